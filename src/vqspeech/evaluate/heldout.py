"""The held-out split a feature shard at a time: the coded utterances' latents and MFCC frames.

`index` lists a split's utterances from the shards' small columns and `read_utterances` reads a
few of them, so a stage can choose utterances without holding the split.

evaluate and figures keep the frame table (`codes.Layout`: a few bytes per latent) and every
system's codes (one integer per latent) whole, and read the vectors in passes over the split
(`CodedSplit.chunks`), one feature shard's utterances and their rows of data/codes/codes.parquet at
a time; what a metric needs of the vectors beyond one chunk (the ABX items' frames, the DPDP
calibration utterances) is gathered by row in a pass (`Rows`). Peak memory then follows the
shard size and the items, not the split.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vqspeech.evaluate.codes import Latents, Layout
from vqspeech.features import shards
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer

INDEX_COLUMNS = ["utterance_id", "speaker", "split", "n_frames", "start_s"]


def index(folder: str | os.PathLike[str], split: str | None = None) -> pa.Table:
    """The utterances of `shards.iter_utterances` (same order) without their frames:
    `INDEX_COLUMNS` and `shard` (the file's position in `shards.files`), read from those small
    columns only."""
    parts = []
    for i, path in enumerate(shards.files(folder)):
        table = shards.read(path, columns=INDEX_COLUMNS)
        if split is not None:
            table = table.filter(pc.equal(table.column("split"), split))
        parts.append(table.append_column("shard", pa.array([i] * table.num_rows, pa.int32())))
    return pa.concat_tables(parts)


def read_utterances(
    folder: str | os.PathLike[str],
    ids: Iterable[str],
    split: str | None = None,
    audio: bool = False,
) -> dict[str, Utterance]:
    """The utterances `ids` (of `split`), read a shard at a time and copied out of it, so only
    they stay in memory; a missing one is a ShardError naming `folder`."""
    wanted, found = set(ids), {}
    for shard in shards.iter_shards(folder, split, audio):
        for u in shard:
            if u.utterance_id in wanted:
                wave = None if u.audio is None else u.audio.copy()
                found[u.utterance_id] = replace(u, features=u.features.copy(), audio=wave)
    missing = sorted(wanted - set(found))
    if missing:
        where = "" if split is None else f" in split {split!r}"
        raise shards.ShardError(
            f"{folder}: {len(missing)} utterances not found{where}, e.g. {missing[0]!r}"
        )
    return found


def pair_frames(features: np.ndarray) -> np.ndarray:
    """[T, D] -> [T // 2, D]: the mean of frames 2k and 2k+1 (a trailing odd frame is dropped)."""
    n = len(features) // 2
    return features[: 2 * n].reshape(n, 2, -1).mean(axis=1)


@dataclass(frozen=True)
class Chunk:
    """The coded utterances [first, first + n) of the layout, in its order."""

    first: int  # utterance index in the layout
    rows: slice  # their rows of the frame table
    latents: np.ndarray | None  # float32 [rows, E]
    paired: np.ndarray | None  # float64 [rows, D]: normalized MFCC, frames 2k and 2k+1 averaged
    native: np.ndarray | None  # float64 [native rows, D]: normalized 10 ms frames
    native_rows: slice  # their rows of the 10 ms frame table (`CodedSplit.native_offsets`)
    offsets: np.ndarray  # int64 [n + 1]: utterance j is rows offsets[j]:offsets[j+1] of the chunk


class CodedSplit:
    """The coded utterances of `layout` in the features of `split` under `features_dir`."""

    def __init__(
        self,
        layout: Layout,
        codes_dir: str | os.PathLike[str],
        features_dir: str | os.PathLike[str],
        split: str,
        norm: Normalizer,
    ) -> None:
        self.layout, self.codes_dir, self.norm = layout, Path(codes_dir), norm
        self.features_dir, self.split = Path(features_dir), split
        table = index(features_dir, split)
        n_frames = dict(
            zip(
                table.column("utterance_id").to_pylist(),
                table.column("n_frames").to_pylist(),
                strict=True,
            )
        )
        missing = [u for u in layout.ids if u not in n_frames]
        if missing:
            raise ValueError(
                f"{features_dir}: {len(missing)} coded utterances are not in its "
                f"{split!r} split, e.g. {missing[0]!r} (rerun align)"
            )
        self.n_frames = np.array([n_frames[u] for u in layout.ids], dtype=np.int64)
        short = np.flatnonzero(self.n_frames // 2 < layout.counts)
        if len(short):
            u = int(short[0])
            raise ValueError(
                f"{features_dir}: no MFCC frames for some coded frames of "
                f"{len(short)} utterances, e.g. {layout.ids[u]!r}: "
                f"{layout.counts[u]} latents, {self.n_frames[u]} 10 ms "
                "frames"
            )
        self.native_offsets = np.r_[0, np.cumsum(self.n_frames)].astype(np.int64)

    def chunks(
        self, latents: bool = True, paired: bool = True, native: bool = False
    ) -> Iterator[Chunk]:
        """One pass over the split, a shard's coded utterances at a time, reading what is asked."""
        position = {u: i for i, u in enumerate(self.layout.ids)}
        reader = Latents(self.codes_dir) if latents else None
        at, off = 0, self.layout.offsets
        for shard in shards.iter_shards(self.features_dir, self.split):
            utts = [u for u in shard if u.utterance_id in position]
            if not utts:
                continue
            got = [position[u.utterance_id] for u in utts]
            if got != list(range(at, at + len(utts))):
                raise ValueError(
                    f"{self.codes_dir / 'codes.parquet'}: utterances not in the "
                    f"order of {self.features_dir} (rerun align)"
                )
            end = at + len(utts)
            rows = slice(int(off[at]), int(off[end]))
            local = off[at : end + 1] - off[at]
            pair = nat = None
            if paired:
                pair = np.concatenate(
                    [
                        pair_frames(self.norm(u.features, np.float64))[:n]
                        for u, n in zip(utts, np.diff(local), strict=True)
                    ]
                )
            if native:
                nat = np.concatenate([self.norm(u.features, np.float64) for u in utts])
            lat = reader.next(rows.stop - rows.start) if reader is not None else None
            nrows = slice(int(self.native_offsets[at]), int(self.native_offsets[end]))
            yield Chunk(at, rows, lat, pair, nat, nrows, local)
            at = end
        if at != len(self.layout.ids):
            raise ValueError(
                f"{self.features_dir}: {len(self.layout.ids) - at} coded utterances not found"
            )


class Rows:
    """Rows of a frame table gathered from a pass of chunks: `add(part, rows)` with the chunk's
    vectors and its slice of the table; `result()` the wanted rows [len(wanted), D] in order."""

    def __init__(self, wanted: np.ndarray) -> None:
        self.wanted = np.asarray(wanted, dtype=np.int64)
        self._parts: list[np.ndarray] = []

    def add(self, part: np.ndarray, rows: slice) -> None:
        lo, hi = np.searchsorted(self.wanted, [rows.start, rows.stop])
        self._parts.append(part[self.wanted[lo:hi] - rows.start])

    def result(self) -> np.ndarray:
        out = np.concatenate(self._parts)
        if len(out) != len(self.wanted):
            raise ValueError(f"gathered {len(out)} rows of {len(self.wanted)}")
        return out


class Spill:
    """Rows of a frame table gathered from a pass of chunks into files in `folder`, one per
    block of wanted rows, so that a block at a time is read back into memory: `add(part, rows)`
    as `Rows.add`; `block(b)` the rows `wanted[b]` (sorted) [len(wanted[b]), D] in order. Stored
    as raw `dtype` values (the process's own scratch, never an output)."""

    def __init__(
        self,
        wanted: list[np.ndarray],
        folder: str | os.PathLike[str],
        name: str,
        dtype: np.dtype | type = np.float32,
    ) -> None:
        self.wanted = [np.asarray(w, dtype=np.int64) for w in wanted]
        self.paths = [Path(folder) / f"{name}.{b}.bin" for b in range(len(wanted))]
        self.dtype, self.dim = np.dtype(dtype), None
        for path in self.paths:
            path.write_bytes(b"")

    def add(self, part: np.ndarray, rows: slice) -> None:
        self.dim = part.shape[1]
        for wanted, path in zip(self.wanted, self.paths, strict=True):
            lo, hi = np.searchsorted(wanted, [rows.start, rows.stop])
            if hi > lo:
                with path.open("ab") as f:
                    part[wanted[lo:hi] - rows.start].astype(self.dtype, copy=False).tofile(f)

    def block(self, b: int) -> np.ndarray:
        out = np.fromfile(self.paths[b], dtype=self.dtype)
        if self.dim is None or len(out) != len(self.wanted[b]) * self.dim:
            raise ValueError(
                f"{self.paths[b]}: gathered {len(out)} values, not "
                f"{len(self.wanted[b])} rows of {self.dim}"
            )
        return out.reshape(len(self.wanted[b]), self.dim)
