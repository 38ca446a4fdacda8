"""data/codes/, the align stage's output and what evaluate and figures read: its one contract.

- codes.parquet: one row per 20 ms latent of the held-out split (utterance_id, speaker, frame,
  code, phone, latent), grouped by utterance in the features' order, frames 0..n-1 in order;
- phones.parquet: every phone interval of those utterances, in the same utterance order (ABX
  takes its items from them);
- codebook.parquet: the code vectors; train_latents.parquet: a seeded sample of train latents
  (for k-means on latents), absent with `eval.train_latents: 0`.
`CodesWriter` writes it a shard of utterances at a time; the readers read it back, the frame
table without its vectors (`read_frames`: a `Layout`) and the vectors by rows (`Latents`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

INTERVAL_COLUMNS = ["utterance_id", "speaker", "start", "end", "phone"]


@dataclass
class JoinReport:
    frames: int
    only_codes: dict[str, int]  # utterance -> frames with a code but no label
    only_labels: dict[str, int]  # utterance -> frames with a label but no code


@dataclass
class Aligned:
    table: pa.Table  # one row per 20 ms latent (see `align`)
    intervals: pd.DataFrame  # every phone interval of the utterances (see `intervals_of`)
    report: JoinReport


class CodesWriter:
    """data/codes/ written a shard of utterances at a time (`add`), in the order added:
    codes.parquet (one row group per `add`), phones.parquet, and at `close` codebook.parquet;
    what it holds is the codes used and the join report, not the rows."""

    def __init__(self, folder: Path, codebook: np.ndarray) -> None:
        self.folder, self.codebook = folder, codebook
        self._codes: pq.ParquetWriter | None = None
        self._phones: pq.ParquetWriter | None = None
        self.used: set[int] = set()
        self.report = JoinReport(0, {}, {})
        self.utterances = 0

    def add(self, aligned: Aligned, utterances: int) -> None:
        table = aligned.table
        phones = pa.Table.from_pandas(aligned.intervals[INTERVAL_COLUMNS], preserve_index=False)
        if self._codes is None:
            self._codes = pq.ParquetWriter(
                self.folder / "codes.parquet", table.schema, compression="zstd"
            )
            self._phones = pq.ParquetWriter(
                self.folder / "phones.parquet", phones.schema, compression="zstd"
            )
        self._codes.write_table(table)
        self._phones.write_table(phones)
        self.used.update(np.unique(table.column("code").to_numpy()).tolist())
        r = aligned.report
        self.report = JoinReport(
            self.report.frames + r.frames,
            {**self.report.only_codes, **r.only_codes},
            {**self.report.only_labels, **r.only_labels},
        )
        self.utterances += utterances

    def close(self) -> None:
        if self._codes is None:
            raise ValueError("no utterances were coded")
        self._codes.close()
        self._phones.close()
        pq.write_table(codebook_table(self.codebook), self.folder / "codebook.parquet")


def summary(split: str, utterances: int, codes_used: int, report: JoinReport) -> dict:
    """data/align_report.json: what was joined, and every frame left out on either side."""
    return {
        "split": split,
        "utterances": utterances,
        "frames": report.frames,
        "codes_used": codes_used,
        "frames_only_codes": sum(report.only_codes.values()),
        "frames_only_labels": sum(report.only_labels.values()),
        "only_codes": report.only_codes,
        "only_labels": report.only_labels,
    }


def write_train_latents(folder: Path, latents: np.ndarray) -> None:
    """data/codes/train_latents.parquet: one `latent` vector per row."""
    flat = pa.array(latents.astype(np.float32).reshape(-1))
    table = pa.table({"latent": pa.FixedSizeListArray.from_arrays(flat, latents.shape[1])})
    pq.write_table(table, folder / "train_latents.parquet", compression="zstd")


def read_train_latents(folder: str | os.PathLike[str]) -> np.ndarray | None:
    """data/codes/train_latents.parquet back ([N, E]), or None when align kept none
    (`eval.train_latents: 0`)."""
    path = Path(folder) / "train_latents.parquet"
    return _matrix(pq.read_table(path).column("latent")) if path.exists() else None


def read_intervals(folder: str | os.PathLike[str]) -> pd.DataFrame:
    """data/codes/phones.parquet: every phone interval of the coded utterances, by utterance in
    time order (utterance_id, speaker, start, end, phone; seconds from the features' start)."""
    path = Path(folder) / "phones.parquet"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: missing; it is written by the align stage (run `dvc repro align`)"
        )
    phones = pq.read_table(path).to_pandas()
    if list(phones.columns) != INTERVAL_COLUMNS:
        raise ValueError(f"{path}: columns {list(phones.columns)}, expected {INTERVAL_COLUMNS}")
    return phones


def codebook_table(codebook: np.ndarray) -> pa.Table:
    """The quantizer's code vectors [K, E] as a table: code, vector."""
    k, dim = codebook.shape
    flat = pa.array(codebook.astype(np.float32).reshape(-1))
    return pa.table(
        {
            "code": pa.array(np.arange(k), pa.int32()),
            "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
        }
    )


def read_codes(folder: str | os.PathLike[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """data/codes back, whole: the frame table (`read_frames`), its latents [N, E] in the same
    row order, and the codebook [K, E]. The stages read the latents a shard at a time instead
    (`Latents`)."""
    frames = read_frames(folder).frames
    latents = _matrix(
        pq.read_table(Path(folder) / "codes.parquet", columns=["latent"]).column("latent")
    )
    return frames, latents, read_codebook(folder)


@dataclass(frozen=True)
class Layout:
    """The frame table of data/codes and where each utterance's rows are."""

    frames: pd.DataFrame  # utterance_id, speaker, frame, code, phone (categorical strings)
    ids: np.ndarray  # str [U]: the utterances in row order
    offsets: np.ndarray  # int64 [U + 1]: utterance i is rows offsets[i]:offsets[i + 1]

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


def layout_of(frames: pd.DataFrame, source: str = "frames") -> Layout:
    """The layout of a frame table whose rows are grouped by utterance with frames 0..n-1 in
    order; anything else is a ValueError naming `source`."""
    utt = frames["utterance_id"].to_numpy()
    frame = frames["frame"].to_numpy()
    change = np.flatnonzero(utt[1:] != utt[:-1]) + 1 if len(utt) else np.zeros(0, np.int64)
    starts = np.r_[0, change].astype(np.int64) if len(utt) else change
    offsets = np.r_[starts, len(utt)].astype(np.int64)
    ids = utt[starts].astype(str)
    expected = np.arange(len(utt)) - np.repeat(starts, np.diff(offsets))
    if len(set(ids)) != len(ids) or (frame != expected).any():
        raise ValueError(f"{source}: rows not grouped by utterance with frames 0, 1, ... in order")
    return Layout(frames, ids, offsets)


FRAME_COLUMNS = ["utterance_id", "speaker", "frame", "code", "phone"]


def read_frames(folder: str | os.PathLike[str]) -> Layout:
    """data/codes/codes.parquet without its latents: one row per latent, in the file's order
    (grouped by utterance, utterances in the features' order, frames 0, 1, ...), strings as
    categoricals; a few bytes per latent, whatever their dimension."""
    path = Path(folder) / "codes.parquet"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: missing; it is written by the align stage (run `dvc repro align`)"
        )
    strings = ["utterance_id", "speaker", "phone"]
    table = pq.read_table(path, columns=FRAME_COLUMNS, read_dictionary=strings)
    return layout_of(table.to_pandas(), str(path))


def read_codebook(folder: str | os.PathLike[str]) -> np.ndarray:
    """data/codes/codebook.parquet: the code vectors [K, E]."""
    path = Path(folder) / "codebook.parquet"
    book = pq.read_table(path)
    codebook = _matrix(book.column("vector"))
    if (book.column("code").to_numpy() != np.arange(len(codebook))).any():
        raise ValueError(f"{path}: codes are not 0..K-1 in order")
    return codebook


class Latents:
    """The latents of data/codes/codes.parquet read forward a batch at a time: `next(n)` is the
    next n rows [n, E]; one batch of the file is in memory beside what was asked for."""

    def __init__(self, folder: str | os.PathLike[str], batch_rows: int = 16_384) -> None:
        self.path = Path(folder) / "codes.parquet"
        # pre_buffer (pyarrow's default, for object stores) reads every row group's column
        # chunks ahead: the whole column in memory. Off, a row group at a time.
        file = pq.ParquetFile(self.path, pre_buffer=False)
        self._batches = file.iter_batches(batch_rows, columns=["latent"])
        self._held = np.zeros((0, 0), np.float32)
        self.row = 0

    def next(self, n: int) -> np.ndarray:
        parts, need = [], n
        while need > 0:
            if len(self._held) == 0:
                batch = next(self._batches, None)
                if batch is None:
                    raise ValueError(
                        f"{self.path}: {n} more latents asked for at row {self.row}, past the end"
                    )
                self._held = _matrix(batch.column("latent"))
            take, self._held = self._held[:need], self._held[need:]
            parts.append(take)
            need -= len(take)
        self.row += n
        if not parts:
            return np.zeros((0, self._held.shape[1]), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    flat = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return flat.values.to_numpy(zero_copy_only=False).reshape(len(flat), flat.type.list_size)
