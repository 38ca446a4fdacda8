"""train stage: the VQ-VAE on crops of the train split, validated on the held-out val speakers.

`python stages/train.py run` (what dvc.yaml calls; `torchrun --nproc_per_node=N stages/train.py
run` for DDP) writes models/model.pt, models/snapshots.parquet (codebook + val latents every
`train.snapshot_every` epochs), metrics/train.json and dvclive curves under plots/train/; a
checkpoint per epoch goes to models/checkpoints/<run key>/ (not a DVC output: kept between runs,
so an interrupted run resumes). `python stages/train.py summary` prints parameters per module
and the receptive field. Needs torch, numpy, pyarrow, pydantic, pyyaml, typer and tqdm (and
librosa for `model.target: logmel`, whose targets it computes from the shards' audio).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from vqspeech import cli
from vqspeech.io.progress import progress

app = cli.app(__doc__)


@app.command()
def run(
    params_file: cli.ParamsFile = cli.PARAMS,
    features_dir: cli.FeaturesDir = cli.FEATURES,
    stats_path: cli.StatsFile = cli.STATS,
    model_path: Annotated[Path, cli.opt("--model", "Model to write.")] = Path("models/model.pt"),
    checkpoints: Annotated[Path, cli.opt("--checkpoints", "Run folders (resume).")] = Path(
        "models/checkpoints"
    ),
    metrics_path: Annotated[Path, cli.opt("--metrics", "Training metrics to write.")] = Path(
        "metrics/train.json"
    ),
    live_dir: Annotated[Path, cli.opt("--live", "dvclive folder of the curves.")] = Path(
        "plots/train"
    ),
    snapshots_path: Annotated[Path, cli.opt("--snapshots", "Codebook snapshots to write.")] = Path(
        "models/snapshots.parquet"
    ),
) -> None:
    """Train the model (resuming from the last checkpoint of the same configuration)."""
    import json

    import torch

    from vqspeech.features import shards
    from vqspeech.features.stats import Normalizer
    from vqspeech.io import atomic
    from vqspeech.model.build import UnitModel, build
    from vqspeech.model.checkpoint import save_model
    from vqspeech.model.vqvae import summary
    from vqspeech.train import checkpoints as ckpt
    from vqspeech.train import livelog, snapshots
    from vqspeech.train.crops import load_train_val
    from vqspeech.train.loop import code_fingerprint, setup, train
    from vqspeech.train.stream import InMemory, Plan, Streamed

    with cli.stage("train", params_file) as params:
        cfg, model_cfg = params.train, params.model
        if cfg.threads:
            cores = cli.jobs(0)
            if cfg.threads > cores:  # oversubscribed OpenMP threads wait on each other (~10x)
                raise ValueError(
                    f"train.threads: {cfg.threads} is more than the {cores} cores "
                    "this process may use; set at most that, or 0 for all"
                )
            torch.set_num_threads(cfg.threads)
        d = setup(cfg.device)
        norm = Normalizer.load(stats_path)
        wavenet = model_cfg.decoder == "wavenet"  # the WaveNet learns the crops' samples
        logmel = model_cfg.target == "logmel"  # computed from the samples
        if logmel:  # the targets are computed over the whole split: held in memory
            cli.log.warning(
                "model.target logmel: the train split is held in memory, not "
                "streamed (train.buffer_mb does not apply)"
            )
            train_mem, val_mem, speakers = load_train_val(features_dir, norm, True)
            from vqspeech.train.targets import add_logmel_targets

            with cli.timed("decoder targets (log mel energies from the shards' audio)"):
                try:
                    add_logmel_targets(train_mem, val_mem, params.features.preemphasis)
                except ValueError as err:
                    raise ValueError(f"model.target logmel: {err}") from None
                except ImportError as err:  # the targets' mel filters come from librosa
                    raise ValueError(
                        f"model.target logmel needs librosa here ({err}); "
                        "install the project's requirements"
                    ) from None
            if not wavenet:
                for data in (train_mem, val_mem):
                    if data is not None:
                        data.audio = data.audio_offsets = None
            train_data = InMemory(train_mem, wavenet)
            val_data = None if val_mem is None else InMemory(val_mem, wavenet)
        else:
            train_data = Streamed(features_dir, "train", norm, cfg.buffer_mb * 2**20, audio=wavenet)
            speakers = train_data.speaker_names
            try:
                val_data = Streamed(
                    features_dir, "val", norm, float("inf"), train_data.speaker_index, wavenet
                )
            except ValueError as err:
                cli.log.warning("no validation: %s", err)
                val_data = None
        data_key = ckpt.data_fingerprint(features_dir, stats_path)
        key = ckpt.run_key(model_cfg, cfg, data_key, code_fingerprint())
        folder = ckpt.run_dir(checkpoints, key)
        if d.main:
            n_val = val_data.utterances if val_data else "no"
            windows = train_data.windows(cfg.seed, 0)
            cli.log.info(
                "read %s: %d train utterances (%d frames, %d speakers; %d window(s) "
                "of at most %g MiB per epoch), %s val; device %s x %d",
                features_dir,
                train_data.utterances,
                train_data.frames,
                len(speakers),
                len(windows),
                cfg.buffer_mb,
                n_val,
                d.device,
                d.world,
            )
            shape = {
                "input_dim": train_data.input_dim,
                "n_speakers": len(speakers),
                "output_dim": train_data.output_dim,
            }
            cli.log.info(
                "model:\n%s\nrun key %s: checkpoint and snapshots in %s/",
                summary(build(model_cfg, **shape)),
                key,
                folder,
            )
            atomic.remove_stale(
                model_path, metrics_path, snapshots_path, *ckpt.run_files(folder, cfg.epochs)
            )
        resume_at = ckpt.resume_step(checkpoints, key, cfg.epochs, d.world)
        live = livelog.open_live(live_dir, resume_at, folder) if d.main else None
        # each rank takes its share of every epoch's batches
        plan = Plan(cfg.crop_frames, cfg.batch_size, cfg.seed)
        total = sum(plan.steps(train_data, e, d.world) for e in range(cfg.epochs))
        bar = progress(
            desc="train", unit="step", total=total, initial=resume_at or 0, disable=not d.main
        )
        sample = shards.iter_utterances(features_dir, "val" if val_data is not None else "train")
        snaps = snapshots.Snapshots(folder, key, sample, norm, cfg.snapshot_every)

        def on_epoch(epoch: int, model: UnitModel) -> None:
            snaps(epoch, model)
            if live is not None:
                livelog.keep(live_dir, folder)

        with cli.timed(f"train ({cfg.epochs} epochs)"):
            result = train(
                model_cfg,
                cfg,
                train_data,
                val_data,
                checkpoints,
                data_key,
                live,
                lambda *_: bar.update(1),
                d,
                on_epoch if d.main else None,
            )
        bar.close()
        if d.main:
            # models/model.pt last: a failure anywhere before leaves no new model behind
            snaps.take(cfg.epochs, result.model)  # the final codebook, always this run's
            epochs = snapshots.schedule(cfg.epochs, snaps.every)
            n = snapshots.write(snapshots_path, folder, key, epochs)
            atomic.write_text(metrics_path, json.dumps(result.metrics(), indent=2) + "\n")
            if live is not None:
                live.end()
            extra = {"speakers": speakers, "train": cfg.model_dump(), "steps": result.steps}
            save_model(model_path, result.model, extra)
            cli.log.info(
                "wrote %s, %s (%d snapshots), %s, %s/",
                model_path,
                snapshots_path,
                n,
                metrics_path,
                live_dir,
            )


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
