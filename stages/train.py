"""train stage: the VQ-VAE on crops of the train split, validated on the held-out val speakers.

Writes models/model.pt, models/snapshots.parquet (codebook + val latents every
`train.snapshot_every` epochs), metrics/train.json and dvclive curves under plots/train/; a
checkpoint per epoch in models/checkpoints/<run key>/ (kept: an interrupted run resumes).
`torchrun --nproc_per_node=N stages/train.py run`: DDP. `summary`: parameters and receptive field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from vqspeech import cli
from vqspeech.io.progress import progress

app = cli.app(__doc__)
ModelOut = Annotated[Path, cli.opt("--model", "Model to write.")]
RunsDir = Annotated[Path, cli.opt("--checkpoints", "Run folders (resume).")]
MetricsOut = Annotated[Path, cli.opt("--metrics", "Training metrics to write.")]
LiveDir = Annotated[Path, cli.opt("--live", "dvclive folder of the curves.")]
SnapshotsOut = Annotated[Path, cli.opt("--snapshots", "Codebook snapshots to write.")]


@app.command()
def run(
    params_file: cli.ParamsFile = cli.PARAMS,
    features_dir: cli.FeaturesDir = cli.FEATURES,
    stats_path: cli.StatsFile = cli.STATS,
    model_path: ModelOut = Path("models/model.pt"),
    runs: RunsDir = Path("models/checkpoints"),
    metrics_path: MetricsOut = Path("metrics/train.json"),
    live_dir: LiveDir = Path("plots/train"),
    snapshots_path: SnapshotsOut = Path("models/snapshots.parquet"),
) -> None:
    """Train the model (resuming from the last checkpoint of the same configuration)."""
    import json

    from vqspeech.features import shards, stats
    from vqspeech.io import atomic
    from vqspeech.model.checkpoint import save_model
    from vqspeech.train import checkpoints, livelog, snapshots
    from vqspeech.train.loop import code_fingerprint, describe, setup, train
    from vqspeech.train.stream import Plan, sources

    with cli.stage("train", params_file) as params:
        cfg, model_cfg = params.train, params.model
        d = setup(cfg.device, cfg.threads)
        norm = stats.Normalizer.load(stats_path)
        train_data, val_data, speakers = sources(features_dir, norm, params)
        data_key = checkpoints.data_fingerprint(features_dir, stats_path)
        key = checkpoints.run_key(model_cfg, cfg, data_key, code_fingerprint())
        folder = checkpoints.run_dir(runs, key)
        if d.main:
            said = describe(model_cfg, cfg, train_data, val_data, speakers, d)
            cli.log.info(f"read {features_dir}: {said}\nrun key {key}: checkpoints in {folder}/")
            stale = checkpoints.run_files(folder, cfg.epochs)
            atomic.remove_stale(model_path, metrics_path, snapshots_path, *stale)
        resume_at = checkpoints.resume_step(runs, key, cfg.epochs, d.world)
        curves = livelog.Curves(live_dir, folder, resume_at, d.main)
        plan = Plan(cfg.crop_frames, cfg.batch_size, cfg.seed)  # each rank: its share of steps
        total = sum(plan.steps(train_data, e, d.world) for e in range(cfg.epochs))
        bar = progress(
            desc="train", unit="step", total=total, initial=resume_at or 0, disable=not d.main
        )
        sample = shards.iter_utterances(features_dir, "val" if val_data is not None else "train")
        snaps = snapshots.Snapshots(folder, key, sample, norm, cfg.snapshot_every, curves.keep)
        run = dict(checkpoint_dir=runs, data_fingerprint=data_key, live=curves.live, d=d)
        hooks = {"on_step": lambda *_: bar.update(1), "on_epoch": snaps if d.main else None}
        with cli.timed(f"train ({cfg.epochs} epochs)"):
            result = train(model_cfg, cfg, train_data, val_data, **run, **hooks)
        bar.close()
        if d.main:  # models/model.pt last: a failure anywhere before leaves no new model behind
            n = snaps.finish(cfg.epochs, result.model, snapshots_path)
            atomic.write_text(metrics_path, json.dumps(result.metrics(), indent=2) + "\n")
            curves.end()
            extra = {"speakers": speakers, "train": cfg.model_dump(), "steps": result.steps}
            save_model(model_path, result.model, extra)
            cli.log.info(f"wrote {model_path}, {snapshots_path} ({n} snapshots), {metrics_path}")


@app.command("summary")
def show_summary(
    params_file: cli.ParamsFile = cli.PARAMS,
    input_dim: Annotated[int, cli.opt("--input-dim", "Feature dimensions (39: MFCC39).")] = 39,
    n_speakers: Annotated[int, cli.opt("--n-speakers", "Training speakers.")] = 7,
) -> None:
    """Print parameters per module and the encoder's receptive field for the params' sizes."""
    from vqspeech.model.build import build
    from vqspeech.model.vqvae import summary
    from vqspeech.train.targets import TARGET_MELS

    params = cli.load_params_or_exit(params_file)
    out = TARGET_MELS if params.model.target == "logmel" else None
    print(summary(build(params.model, input_dim=input_dim, n_speakers=n_speakers, output_dim=out)))


if __name__ == "__main__":
    cli.run(app)
