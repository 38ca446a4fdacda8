"""Codebook snapshots over training: the codebook and the latents of a fixed sample of val frames,
every `train.snapshot_every` epochs, for the compare command's animated UMAP.

Each snapshot is written as it is taken (atomically, beside the checkpoints, tagged with the run
key) so that a resumed run keeps the ones it took before the interruption; at the end the stage
gathers those of this run into `models/snapshots.parquet`: epoch, kind (`code` | `latent`),
index, phone (the latent's label; empty for codes), vector. Needs only torch, numpy and pyarrow.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vqspeech import atomic
from vqspeech.model.vqvae import VQVAE
from vqspeech.shards import Utterance

KEY = b"vqspeech.run_key"


class Snapshots:
    """Callable `(epoch, model)` for `training.train(on_epoch=...)`."""

    def __init__(
        self, folder: Path, key: str, sample: Iterable[Utterance], mean: np.ndarray,
        std: np.ndarray, every: int, max_latents: int = 1000,
    ) -> None:  # fmt: skip
        self.folder, self.key, self.every = Path(folder), key, every
        self.inputs: list[np.ndarray] = []
        self.phones: list[str] = []
        n = 0
        for u in sample:  # whole utterances, in shard order, until max_latents
            if n >= max_latents:
                break
            self.inputs.append(((u.features - mean) / std).astype(np.float32))
            self.phones += [u.phones[2 * k + 1] for k in range(len(u.features) // 2)]
            n += len(u.features) // 2
        self.max_latents = min(n, max_latents)

    def __call__(self, epoch: int, model: VQVAE) -> None:
        if self.every <= 0 or epoch % self.every:
            return
        self.take(epoch, model)

    @torch.no_grad()
    def take(self, epoch: int, model: VQVAE) -> Path:
        was_training = model.training
        model.eval()  # no EMA update, no jitter: a snapshot must not change the run
        try:
            device = next(model.parameters()).device
            latents = [model.encode(torch.from_numpy(x)[None].to(device))[0][0].float().cpu()
                       for x in self.inputs]  # fmt: skip
        finally:
            model.train(was_training)
        z = torch.cat(latents).numpy()[: self.max_latents] if latents else np.zeros((0, 0))
        book = model.quantizer.codebook.detach().float().cpu().numpy()
        table = snapshot_table(epoch, book, z, self.phones[: len(z)])
        table = table.replace_schema_metadata({KEY: self.key.encode()})
        path = self.folder / f"snapshot_{epoch:04d}.parquet"
        with atomic.atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return path


def snapshot_table(epoch: int, codebook: np.ndarray, latents: np.ndarray,
                   phones: list[str]) -> pa.Table:  # fmt: skip
    k, dim = codebook.shape
    vectors = np.concatenate([codebook, latents.reshape(-1, dim)]).astype(np.float32)
    n = len(vectors)
    return pa.table({
        "epoch": pa.array(np.full(n, epoch), pa.int32()),
        "kind": pa.array(["code"] * k + ["latent"] * (n - k), pa.string()),
        "index": pa.array(np.concatenate([np.arange(k), np.arange(n - k)]), pa.int32()),
        "phone": pa.array([""] * k + list(phones), pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
    })  # fmt: skip


def collect(folder: str | os.PathLike[str], key: str, epochs: int) -> pa.Table:
    """This run's snapshots (key matches, epoch <= epochs) in epoch order; stale ones ignored."""
    tables = []
    for path in sorted(Path(folder).glob("snapshot_*.parquet")):
        table = pq.read_table(path)
        meta = table.schema.metadata or {}
        if meta.get(KEY) == key.encode() and table.column("epoch")[0].as_py() <= epochs:
            tables.append(table.replace_schema_metadata(None))
    if not tables:
        raise ValueError(f"{folder}: no snapshots of this run")
    return pa.concat_tables(tables)
