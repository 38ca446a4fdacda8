"""Checkpoints of a run and resuming them: each configuration has its own folder
`models/checkpoints/<run key>/`, holding `last.pt` (model, optimizer, RNG states, position, written
after every epoch), the codebook snapshots and the run's curves.

A rerun with the same configuration resumes from `last.pt` and ends with the same weights as an
uninterrupted run; a checkpoint of other params, data or training code is never resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import torch

from vqspeech.params import ModelParams, TrainParams

log = logging.getLogger(__name__)
CHECKPOINT = "last.pt"
# train params that do not change the weights: a run that differs only in them resumes
NOT_IN_KEY = ("epochs", "device", "log_every", "threads", "snapshot_every", "workers")


def run_key(
    model_cfg: ModelParams, cfg: TrainParams, data_fingerprint: str, code_fingerprint: str
) -> str:
    """What a checkpoint must match to be resumed: model and train params (the number of epochs
    may grow, never shrink: see `load_resumable`), the data, and the training code
    (`loop.code_fingerprint()`)."""
    train = cfg.model_dump(exclude=set(NOT_IN_KEY))
    blob = json.dumps(
        [model_cfg.model_dump(), train, data_fingerprint, code_fingerprint], sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_dir(checkpoint_root: Path, key: str) -> Path:
    """Where one run keeps its checkpoint and snapshots: `<root>/<run key>/`. A folder per
    configuration, so runs of other params never read or overwrite each other's files. The
    number of epochs is not part of the key: a shorter run of the same configuration replaces
    a longer one's folder (it cannot resume it), and the longer run then resumes from it."""
    return Path(checkpoint_root) / key


def run_files(folder: Path, epochs: int) -> list[Path]:
    """What a run writes into its folder (checkpoint, curves, snapshots): the outputs whose
    temporaries a killed run may have left."""
    from vqspeech.train import livelog

    snaps = [folder / f"snapshot_{e:04d}.parquet" for e in range(epochs + 1)]
    return [folder / CHECKPOINT, folder / livelog.CURVES, *snaps]


def resume_step(checkpoint_dir: Path, key: str, epochs: int, world: int = 1) -> int | None:
    """The step a run with this key, number of epochs and of ranks would resume from, or None
    when it would start afresh."""
    state = load_resumable(
        run_dir(checkpoint_dir, key) / CHECKPOINT, key, epochs, quiet=True, world=world
    )
    return None if state is None else int(state["step"])


def load_resumable(
    path: Path, key: str, epochs: int, quiet: bool = False, world: int = 1
) -> dict | None:
    """The checkpoint's state when this run can continue it; otherwise None (and why).

    A checkpoint of the same configuration with more epochs done than `epochs` is no start for
    this run: resuming it would return the longer run's model under the shorter run's params.
    Nor is one written by a run of another number of DDP ranks (`world`): each optimizer step
    averaged world x batch_size crops there."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not quiet:
            log.warning("%s is unreadable (%s); starting from scratch", path, exc)
        return None
    if not isinstance(state, dict) or state.get("key") != key:
        if not quiet:
            why = "other params, data or training code"
            log.warning("%s was written by %s; starting from scratch", path, why)
        return None
    written = int(state.get("world", 1))
    if written != world:
        if not quiet:
            log.warning(
                "%s was written by a run of %d rank(s), this one has %d; starting from scratch",
                path,
                written,
                world,
            )
        return None
    done = int(state["epoch"])
    if done > epochs:
        if not quiet:
            log.warning(
                "%s has %d epochs done, more than train.epochs = %d: a shorter run cannot "
                "resume a longer one; starting from scratch",
                path,
                done,
                epochs,
            )
        return None
    return state


def data_fingerprint(features_dir: Path, stats_path: Path) -> str:
    """What identifies the training data cheaply: the statistics, and the shards' names and
    sizes (shards are written once, atomically)."""
    from vqspeech.features import shards

    h = hashlib.sha256(Path(stats_path).read_bytes())
    for f in shards.files(features_dir):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()[:16]
