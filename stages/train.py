"""train stage: the VQ-VAE on crops of the train split, validated on the held-out val speakers.

`python stages/train.py run` (what dvc.yaml calls; `torchrun --nproc_per_node=N stages/train.py
run` for DDP) writes models/model.pt, models/snapshots.parquet (codebook + val latents every
`train.snapshot_every` epochs), a checkpoint per epoch under models/checkpoints/<run key>/ (not a
DVC output: kept between runs, so an interrupted run resumes), metrics/train.json and dvclive
curves under plots/train/.
`python stages/train.py summary` prints parameters per module and the receptive field.
Imports torch, numpy, pyarrow, pydantic, pyyaml, typer and tqdm (plus dvclive when present).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow.parquet as pq
import torch
import typer

from vqspeech import atomic, livelog, shards, stagelog
from vqspeech.model.vqvae import VQVAE, ModelConfig, summary
from vqspeech.params import ModelParams, Params
from vqspeech.snapshots import Snapshots, schedule
from vqspeech.snapshots import collect as collect_snapshots
from vqspeech.training import (
    CHECKPOINT,
    TrainConfig,
    resume_step,
    run_dir,
    run_key,
    save_model,
    setup,
    train,
)
from vqspeech.trainset import epoch_batches, load_split

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
log = stagelog.setup()
Opt = typer.Option


def model_config(m: ModelParams, input_dim: int, n_speakers: int) -> ModelConfig:
    return ModelConfig(
        input_dim=input_dim, channels=m.channels, res_blocks=m.res_blocks,
        embedding_dim=m.embedding_dim, projection_kernel=m.projection_kernel,
        codebook_size=m.codebook_size, beta=m.beta, ema=m.quantizer == "ema",
        ema_decay=m.ema_decay, dead_threshold=m.dead_threshold, jitter=m.jitter,
        n_speakers=n_speakers, speaker_dim=m.speaker_dim, decoder=m.decoder,
        wavenet_residual_channels=m.wavenet.residual_channels,
        wavenet_skip_channels=m.wavenet.skip_channels,
        wavenet_layers_per_stack=m.wavenet.layers_per_stack, wavenet_stacks=m.wavenet.stacks,
        wavenet_window_latents=m.wavenet.window_latents,
    )  # fmt: skip


def train_config(p: Params) -> TrainConfig:
    t = p.train
    return TrainConfig(
        seed=t.seed, epochs=t.epochs, batch_size=t.batch_size, crop_frames=t.crop_frames,
        lr=t.lr, kmeans_init=t.kmeans_init, kmeans_batches=t.kmeans_batches,
        val_crops=t.val_crops, device=t.device, log_every=t.log_every,
    )  # fmt: skip


def fingerprint(features_dir: Path, stats_path: Path) -> str:
    h = hashlib.sha256(stats_path.read_bytes())
    for f in shards.files(features_dir):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


@app.command()
def run(
    params_file: Annotated[Path, Opt("--params")] = Path("params.yaml"),
    features_dir: Annotated[Path, Opt("--features")] = Path("data/features"),
    stats_path: Annotated[Path, Opt("--stats")] = Path("data/stats.json"),
    model_path: Annotated[Path, Opt("--model")] = Path("models/model.pt"),
    checkpoints: Annotated[Path, Opt("--checkpoints")] = Path("models/checkpoints"),
    metrics_path: Annotated[Path, Opt("--metrics")] = Path("metrics/train.json"),
    live_dir: Annotated[Path, Opt("--live")] = Path("plots/train"),
    snapshots_path: Annotated[Path, Opt("--snapshots")] = Path("models/snapshots.parquet"),
) -> None:
    """Train the VQ-VAE (resuming from the last checkpoint of the same configuration)."""
    params = stagelog.load_params_or_exit(log, params_file)
    if params.train.threads:
        torch.set_num_threads(params.train.threads)
    cfg = train_config(params)
    with stagelog.exit_on_error(log):
        d = setup(cfg.device)
        stats = json.loads(stats_path.read_text())
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        audio = params.model.decoder == "wavenet"  # the WaveNet learns the crops' samples
        train_data, speakers = load_split(features_dir, "train", mean, std, audio=audio)
        index = {s: i for i, s in enumerate(speakers)}
        try:
            val_data, _ = load_split(features_dir, "val", mean, std, index, audio=audio)
        except ValueError as err:
            log.warning("no validation: %s", err)
            val_data = None
        model_cfg = model_config(params.model, train_data.features.shape[1], len(speakers))
        data_key = fingerprint(features_dir, stats_path)
        key = run_key(model_cfg, cfg, data_key)
        if d.main:
            log.info(
                "read %s: %d train utterances (%d frames, %d speakers), %s val; device %s x %d",
                features_dir, len(train_data.utterance_ids), len(train_data.features),
                len(speakers), len(val_data.utterance_ids) if val_data else "no",
                d.device, d.world,
            )  # fmt: skip
            log.info("model:\n%s", summary(VQVAE(model_cfg)))
        folder = run_dir(checkpoints, key)
        if d.main:
            log.info("run key %s: checkpoint and snapshots in %s/", key, folder)
            snapshot_files = (folder / f"snapshot_{e:04d}.parquet" for e in range(cfg.epochs + 1))
            atomic.remove_stale(model_path, metrics_path, snapshots_path, folder / CHECKPOINT,
                                folder / livelog.CURVES, *snapshot_files)  # fmt: skip
        resume_at = resume_step(checkpoints, key, cfg.epochs)
        live = _live(live_dir, resume_at, folder) if d.main else None
        per_epoch = (
            len(epoch_batches(train_data, cfg.crop_frames, cfg.batch_size, cfg.seed, 0)) // d.world
        )  # every epoch has as many batches; each rank takes its share
        bar = stagelog.progress(
            desc="train", unit="step", total=per_epoch * cfg.epochs, initial=resume_at or 0,
            disable=not d.main,
        )  # fmt: skip
        sample_split = "val" if val_data is not None else "train"
        snaps = Snapshots(
            folder, key, shards.iter_utterances(features_dir, sample_split), mean, std,
            params.train.snapshot_every,
        )  # fmt: skip

        def on_epoch(epoch: int, model: VQVAE) -> None:
            snaps(epoch, model)
            if live is not None:
                livelog.keep(live_dir, folder)

        with stagelog.timed(log, f"train ({cfg.epochs} epochs)"):
            result = train(
                model_cfg, cfg, train_data, val_data, checkpoints, data_key, live,
                lambda step, model: bar.update(1), d, on_epoch if d.main else None,
            )  # fmt: skip
        bar.close()
        if d.main:
            # models/model.pt last: a failure anywhere before leaves no new model behind
            snaps.take(cfg.epochs, result.model)  # the final codebook, always this run's
            table = collect_snapshots(folder, key, schedule(cfg.epochs, snaps.every))
            with atomic.atomic_path(snapshots_path) as tmp:
                pq.write_table(table, tmp)
            audio_s = result.frames * 0.01
            metrics = {
                **{k: round(v, 6) if isinstance(v, float) else v for k, v in result.last.items()},
                "steps": result.steps,
                "parameters": sum(p.numel() for p in result.model.parameters()),
                "train_seconds": round(result.seconds, 1),
                # None when this run trained nothing (it found a finished run to resume)
                "audio_seconds_per_second": round(audio_s / result.seconds, 1)
                if result.frames
                else None,
                "resumed_from_epoch": result.resumed_from,
            }
            atomic.write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
            if live is not None:
                live.end()
            extra = {"speakers": speakers, "train": cfg.__dict__, "steps": result.steps}
            save_model(model_path, result.model, extra)
            n_snaps = len(set(table.column("epoch").to_pylist()))
            log.info("wrote %s, %s (%d snapshots), %s, %s/", model_path, snapshots_path,
                     n_snaps, metrics_path, live_dir)  # fmt: skip


def _live(live_dir: Path, resume_at: int | None, folder: Path):
    try:
        from dvclive import Live
    except ImportError:  # a GPU box without dvclive still trains; curves are then not logged
        log.warning("dvclive is not installed: no training curves")
        return None
    if resume_at is not None:
        if livelog.restore(folder, live_dir):  # plots/train may hold another run's curves now
            log.info("restored this run's curves from %s/", folder)
        removed = livelog.truncate(live_dir, resume_at)
        log.info(
            "resuming dvclive curves at step %d (%d rows after it dropped)", resume_at, removed
        )
    return Live(dir=str(live_dir), resume=resume_at is not None, save_dvc_exp=False, dvcyaml=None)


@app.command("summary")
def show_summary(
    params_file: Annotated[Path, Opt("--params")] = Path("params.yaml"),
    input_dim: int = 39,
    n_speakers: int = 7,
) -> None:
    """Print parameters per module and the encoder's receptive field for the params' sizes."""
    params = stagelog.load_params_or_exit(log, params_file)
    print(summary(VQVAE(model_config(params.model, input_dim, n_speakers))))


if __name__ == "__main__":
    sys.exit(app())
