"""Codebook snapshots over training: the codebook and the latents of a fixed sample of val frames,
every `train.snapshot_every` epochs, for the compare command's animated UMAP.

Each snapshot is written as it is taken (atomically, into the run's checkpoint folder, tagged with
the run key) so that a resumed run keeps the ones it took before the interruption; at the end the
stage gathers those of this run's schedule into `models/snapshots.parquet`: epoch, kind (`code` |
`latent`), index, phone (the latent's label; empty for codes), vector. Needs only torch, numpy
and pyarrow.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.io import atomic
from vqspeech.model.build import UnitModel

KEY = b"vqspeech.run_key"
log = logging.getLogger(__name__)


class Snapshots:
    """Callable `(epoch, model)` for `vqspeech.train.loop.train(on_epoch=...)`: a snapshot every
    `every` epochs, then `then()` after every epoch (the train stage keeps its curves)."""

    def __init__(
        self,
        folder: Path,
        key: str,
        sample: Iterable[Utterance],
        norm: Normalizer,
        every: int,
        then: Callable[[], None] = lambda: None,
        max_latents: int = 1000,
    ) -> None:
        self.folder, self.key, self.every, self.then = Path(folder), key, every, then
        self.inputs: list[np.ndarray] = []
        self.phones: list[str] = []
        n = 0
        for u in sample:  # whole utterances, in shard order, until max_latents
            if n >= max_latents:
                break
            self.inputs.append(norm(u.features))
            self.phones += [u.phones[2 * k + 1] for k in range(len(u.features) // 2)]
            n += len(u.features) // 2
        self.max_latents = min(n, max_latents)

    def __call__(self, epoch: int, model: UnitModel) -> None:
        if self.every > 0 and epoch % self.every == 0:
            self.take(epoch, model)
        self.then()

    @torch.no_grad()
    def take(self, epoch: int, model: UnitModel) -> Path:
        was_training = model.training
        model.eval()  # no EMA update, no jitter: a snapshot must not change the run
        try:
            device = next(model.parameters()).device
            latents = [
                model.encode(torch.from_numpy(x)[None].to(device))[0][0].float().cpu()
                for x in self.inputs
            ]
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

    def finish(self, epochs: int, model: UnitModel, path: str | os.PathLike[str]) -> int:
        """The final codebook (always this run's), then models/snapshots.parquet of the run's
        snapshots (`write`); returns how many."""
        self.take(epochs, model)
        return write(path, self.folder, self.key, schedule(epochs, self.every))


def snapshot_table(
    epoch: int, codebook: np.ndarray, latents: np.ndarray, phones: list[str]
) -> pa.Table:
    k, dim = codebook.shape
    vectors = np.concatenate([codebook, latents.reshape(-1, dim)]).astype(np.float32)
    n = len(vectors)
    return pa.table(
        {
            "epoch": pa.array(np.full(n, epoch), pa.int32()),
            "kind": pa.array(["code"] * k + ["latent"] * (n - k), pa.string()),
            "index": pa.array(np.concatenate([np.arange(k), np.arange(n - k)]), pa.int32()),
            "phone": pa.array([""] * k + list(phones), pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        }
    )


def schedule(epochs: int, every: int) -> list[int]:
    """The epochs a run of `epochs` takes snapshots at: 0 (after the k-means init), every
    `every`-th, and the last; only the last when `every` is 0."""
    if every <= 0:
        return [epochs]
    return sorted({0, *range(every, epochs + 1, every), epochs})


def collect(folder: str | os.PathLike[str], key: str, epochs: list[int]) -> pa.Table:
    """This run's snapshots at `epochs` (see `schedule`), in epoch order, read from its run
    folder. Files of other runs (another key) and of other epochs are never read; the last
    epoch's must be there, an earlier one missing (a resumed run that had another
    `snapshot_every`) is left out with a warning."""
    tables = []
    for epoch in sorted(epochs):
        path = Path(folder) / f"snapshot_{epoch:04d}.parquet"
        table = pq.read_table(path) if path.exists() else None
        if table is not None and (table.schema.metadata or {}).get(KEY) != key.encode():
            table = None
        if table is None:
            if epoch == max(epochs):
                raise ValueError(f"{path}: no snapshot of this run's last epoch")
            log.warning("%s: no snapshot of this run; left out", path)
            continue
        tables.append(table.replace_schema_metadata(None))
    return pa.concat_tables(tables)


def write(path: str | os.PathLike[str], folder: Path, key: str, epochs: list[int]) -> int:
    """models/snapshots.parquet from this run's snapshots (`collect`); returns how many."""
    table = collect(folder, key, epochs)
    with atomic.atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return len(set(table.column("epoch").to_pylist()))
