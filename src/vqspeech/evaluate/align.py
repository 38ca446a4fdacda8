"""Codes for whole held-out utterances, joined with ground-truth phones at the same 20 ms rate.

Latent k stands for feature frames 2k and 2k+1 (docs/design.md "Frames and time"); its ground-truth
label is the phone at the centre of those two frames, 17.5 ms after frame 2k starts at the default
hop and window, read from the utterance's TextGrid (shifted by the features' `start_s`). Codes and
labels are joined on (utterance_id, frame) explicitly; frames on one side only are reported.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vqspeech.data.textgrid import Interval, PhoneAlignment, fit_to_duration, read_phones
from vqspeech.evaluate.sampling import BottomK
from vqspeech.features.acoustic import frame_labels
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.model.build import UnitModel


def latent_labels(
    alignment: PhoneAlignment,
    n_latents: int,
    start_s: float = 0.0,
    hop_s: float = 0.01,
    win_s: float = 0.025,
) -> list[str]:
    """The phone at the centre of each latent's two frames: start_s + 20 k ms + 17.5 ms."""
    shifted = [
        Interval(iv.start - start_s, iv.end - start_s, iv.label)
        for iv in alignment.intervals
        if iv.end > start_s
    ]
    shifted[0] = Interval(max(shifted[0].start, 0.0), shifted[0].end, shifted[0].label)
    covered = 2 * n_latents * hop_s + win_s  # the span the latents' frames cover
    fitted = PhoneAlignment(tuple(shifted), shifted[-1].end)
    if fitted.duration < covered:  # the tier may stop a little short of the last window
        fitted = PhoneAlignment(tuple(fit_to_duration(list(shifted), covered)), covered)
    return frame_labels(fitted, n_latents, 2 * hop_s, win_s + hop_s)


INTERVAL_COLUMNS = ["utterance_id", "speaker", "start", "end", "phone"]


def intervals_of(
    alignment: PhoneAlignment, utterance_id: str, speaker: str, start_s: float = 0.0
) -> pd.DataFrame:
    """Every interval of an utterance's alignment, times in seconds from the features' first
    sample (shifted by `start_s`; an interval before it keeps its negative times): the rows of
    data/codes/phones.parquet, which ABX takes its items from."""
    return pd.DataFrame(
        [
            (utterance_id, speaker, iv.start - start_s, iv.end - start_s, iv.label)
            for iv in alignment.intervals
        ],
        columns=INTERVAL_COLUMNS,
    )


@dataclass
class Encoded:
    utterance: Utterance
    latents: np.ndarray  # float32 [L, E]
    codes: np.ndarray  # int64 [L]


def solo(lengths: Iterable[tuple[str, int]], batch_size: int) -> set[str]:
    """The utterances `encode` runs alone (a batch of one) when given all of (id, length) in this
    order: the last of an exact length whose count leaves a batch of one. torch's batch-of-one
    kernels give latents a few 1e-7 away from any larger batch's, while batches of two or more
    agree bit for bit whatever else is in them; so the held-out codes do not depend on how the
    utterances fall into shards, each shard is encoded with the split's own `solo` set."""
    by_length: dict[int, list[str]] = defaultdict(list)
    for uid, n in lengths:
        by_length[n].append(uid)
    if batch_size == 1:
        return {uid for group in by_length.values() for uid in group}
    return {group[-1] for group in by_length.values() if len(group) % batch_size == 1}


@torch.no_grad()
def encode(
    model: UnitModel,
    utterances: list[Utterance],
    norm: Normalizer,
    device: torch.device,
    batch_size: int,
    alone: set[str] | None = None,
) -> Iterator[Encoded]:
    """Latents and codes of whole utterances, batched by exact length (no padding, which would
    change the latents near the end through the convolutions' context). `alone`: the ids run in
    a batch of one (default: `solo` of `utterances`); every other batch has two or more (one
    left over is run beside a copy of itself), so results are those of `utterances` encoded
    together however they are split across calls."""
    model.eval().to(device)
    if alone is None:
        alone = solo(((u.utterance_id, len(u.features)) for u in utterances), batch_size)
    by_length: dict[int, list[Utterance]] = defaultdict(list)
    for u in utterances:
        by_length[len(u.features)].append(u)
    for length in sorted(by_length):
        group = [u for u in by_length[length] if u.utterance_id not in alone]
        chunks = [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
        chunks += [[u] for u in by_length[length] if u.utterance_id in alone]
        for chunk in chunks:
            x = np.stack([norm(u.features) for u in chunk])
            if len(chunk) == 1 and chunk[0].utterance_id not in alone:
                x = np.concatenate([x, x])
            z, vq = model.encode(torch.from_numpy(x).to(device))
            for j, u in enumerate(chunk):
                yield Encoded(u, z[j].float().cpu().numpy(), vq.codes[j].cpu().numpy())


@dataclass
class JoinReport:
    frames: int
    only_codes: dict[str, int]  # utterance -> frames with a code but no label
    only_labels: dict[str, int]  # utterance -> frames with a label but no code


def join(codes: pd.DataFrame, labels: pd.DataFrame) -> tuple[pd.DataFrame, JoinReport]:
    """Inner join on (utterance_id, frame); every frame present on one side only is counted."""
    for name, df in (("codes", codes), ("labels", labels)):
        dup = df.duplicated(["utterance_id", "frame"])
        if dup.any():
            first = df.loc[dup, ["utterance_id", "frame"]].iloc[0].tolist()
            raise ValueError(f"{name}: duplicate (utterance_id, frame) rows, e.g. {first}")
    merged = codes.merge(labels, on=["utterance_id", "frame"], how="outer", indicator=True)
    left = merged[merged["_merge"] == "left_only"].groupby("utterance_id").size()
    right = merged[merged["_merge"] == "right_only"].groupby("utterance_id").size()
    both = merged[merged["_merge"] == "both"].drop(columns="_merge")
    both = both.sort_values(["utterance_id", "frame"]).reset_index(drop=True)
    report = JoinReport(
        len(both),
        {str(k): int(v) for k, v in left.items()},
        {str(k): int(v) for k, v in right.items()},
    )
    return both, report


@dataclass
class Aligned:
    table: pa.Table  # one row per 20 ms latent (see `align`)
    intervals: pd.DataFrame  # every phone interval of the utterances (see `intervals_of`)
    report: JoinReport


def align(
    model: UnitModel,
    utterances: list[Utterance],
    textgrids: dict[str, str],
    norm: Normalizer,
    device: torch.device,
    batch_size: int,
    wrap=lambda it, n: it,
    alone: set[str] | None = None,
) -> Aligned:
    """Encode `utterances`, label each latent from its TextGrid, join; one row per 20 ms latent:
    utterance_id, speaker, frame, code, phone, latent, utterances in the order given, frames in
    order; and the TextGrids' intervals, in the same utterance order. `wrap(iterator, total)`
    adds progress; `alone` as for `encode`."""
    code_rows, label_rows, latents, intervals = [], [], [], {}
    encoded = encode(model, utterances, norm, device, batch_size, alone)
    for enc in wrap(encoded, len(utterances)):
        u = enc.utterance
        base = len(latents)
        latents.extend(enc.latents)
        code_rows += [
            (u.utterance_id, u.speaker, k, int(c), base + k) for k, c in enumerate(enc.codes)
        ]
        alignment = read_phones(textgrids[u.utterance_id])
        intervals[u.utterance_id] = intervals_of(alignment, u.utterance_id, u.speaker, u.start_s)
        labels = latent_labels(alignment, len(enc.codes), u.start_s)
        label_rows += [(u.utterance_id, k, p) for k, p in enumerate(labels)]
    codes = pd.DataFrame(code_rows, columns=["utterance_id", "speaker", "frame", "code", "row"])
    labels = pd.DataFrame(label_rows, columns=["utterance_id", "frame", "phone"])
    joined, report = join(codes, labels)
    position = {u.utterance_id: i for i, u in enumerate(utterances)}
    joined = joined.iloc[
        np.lexsort((joined["frame"].to_numpy(), joined["utterance_id"].map(position).to_numpy()))
    ]
    vectors = np.stack(latents)[joined["row"].to_numpy()].astype(np.float32)
    dim = vectors.shape[1]
    table = pa.table(
        {
            "utterance_id": pa.array(joined["utterance_id"], pa.string()),
            "speaker": pa.array(joined["speaker"], pa.string()),
            "frame": pa.array(joined["frame"], pa.int32()),
            "code": pa.array(joined["code"], pa.int32()),
            "phone": pa.array(joined["phone"], pa.string()),
            "latent": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        }
    )
    phones = pd.concat([intervals[u.utterance_id] for u in utterances], ignore_index=True)
    return Aligned(table, phones, report)


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


def train_latent_sample(
    model: UnitModel,
    utterances: Iterable[list[Utterance]],
    norm: Normalizer,
    device: torch.device,
    batch_size: int,
    count: int,
    seed: int,
) -> tuple[np.ndarray, int]:
    """A seeded sample of at most `count` latents [N, E] of the (train) `utterances`, which the
    `kmeans_latent` baseline is fitted on (as HuBERT clusters its hidden features), and the
    number of utterances read. `utterances` come a shard at a time (`shards.iter_shards`); one
    shard's are in memory at once, and the sample (`sampling.BottomK`)."""
    sample, n = BottomK(count, seed), 0
    for shard in utterances:
        for e in encode(model, shard, norm, device, batch_size):
            sample.add(e.utterance.utterance_id, e.latents)
        n += len(shard)
    return sample.result().astype(np.float32), n


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
