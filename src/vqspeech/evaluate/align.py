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
    alignment: PhoneAlignment, n_latents: int, start_s: float = 0.0, hop_s: float = 0.01,
    win_s: float = 0.025,
) -> list[str]:  # fmt: skip
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
        [(utterance_id, speaker, iv.start - start_s, iv.end - start_s, iv.label)
         for iv in alignment.intervals],
        columns=INTERVAL_COLUMNS,
    )  # fmt: skip


@dataclass
class Encoded:
    utterance: Utterance
    latents: np.ndarray  # float32 [L, E]
    codes: np.ndarray  # int64 [L]


@torch.no_grad()
def encode(
    model: UnitModel, utterances: list[Utterance], norm: Normalizer, device: torch.device,
    batch_size: int,
) -> Iterator[Encoded]:  # fmt: skip
    """Latents and codes of whole utterances, batched by exact length (no padding, which would
    change the latents near the end through the convolutions' context)."""
    model.eval().to(device)
    by_length: dict[int, list[Utterance]] = defaultdict(list)
    for u in utterances:
        by_length[len(u.features)].append(u)
    for length in sorted(by_length):
        group = by_length[length]
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            x = np.stack([norm(u.features) for u in chunk])
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
    model: UnitModel, utterances: list[Utterance], textgrids: dict[str, str], norm: Normalizer,
    device: torch.device, batch_size: int, wrap=lambda it, n: it,
) -> Aligned:  # fmt: skip
    """Encode `utterances`, label each latent from its TextGrid, join; one row per 20 ms latent:
    utterance_id, speaker, frame, code, phone, latent; and the TextGrids' intervals.
    `wrap(iterator, total)` adds progress."""
    code_rows, label_rows, latents, intervals = [], [], [], []
    for enc in wrap(encode(model, utterances, norm, device, batch_size), len(utterances)):
        u = enc.utterance
        base = len(latents)
        latents.extend(enc.latents)
        code_rows += [
            (u.utterance_id, u.speaker, k, int(c), base + k) for k, c in enumerate(enc.codes)
        ]
        alignment = read_phones(textgrids[u.utterance_id])
        intervals.append(intervals_of(alignment, u.utterance_id, u.speaker, u.start_s))
        labels = latent_labels(alignment, len(enc.codes), u.start_s)
        label_rows += [(u.utterance_id, k, p) for k, p in enumerate(labels)]
    codes = pd.DataFrame(code_rows, columns=["utterance_id", "speaker", "frame", "code", "row"])
    labels = pd.DataFrame(label_rows, columns=["utterance_id", "frame", "phone"])
    joined, report = join(codes, labels)
    vectors = np.stack(latents)[joined["row"].to_numpy()].astype(np.float32)
    dim = vectors.shape[1]
    table = pa.table({
        "utterance_id": pa.array(joined["utterance_id"], pa.string()),
        "speaker": pa.array(joined["speaker"], pa.string()),
        "frame": pa.array(joined["frame"], pa.int32()),
        "code": pa.array(joined["code"], pa.int32()),
        "phone": pa.array(joined["phone"], pa.string()),
        "latent": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
    })  # fmt: skip
    phones = pd.concat(intervals, ignore_index=True).sort_values("utterance_id", kind="stable")
    return Aligned(table, phones.reset_index(drop=True), report)


def summary(split: str, utterances: int, table: pa.Table, report: JoinReport) -> dict:
    """data/align_report.json: what was joined, and every frame left out on either side."""
    return {
        "split": split, "utterances": utterances, "frames": report.frames,
        "codes_used": len(set(table.column("code").to_pylist())),
        "frames_only_codes": sum(report.only_codes.values()),
        "frames_only_labels": sum(report.only_labels.values()),
        "only_codes": report.only_codes, "only_labels": report.only_labels,
    }  # fmt: skip


def write_codes(
    folder: Path, table: pa.Table, codebook: np.ndarray, intervals: pd.DataFrame
) -> None:
    """data/codes/: codes.parquet (one row per latent), codebook.parquet and phones.parquet (the
    utterances' phone intervals)."""
    pq.write_table(table, folder / "codes.parquet", compression="zstd")
    pq.write_table(codebook_table(codebook), folder / "codebook.parquet")
    pq.write_table(pa.Table.from_pandas(intervals[INTERVAL_COLUMNS], preserve_index=False),
                   folder / "phones.parquet", compression="zstd")  # fmt: skip


def train_latent_sample(
    model: UnitModel, utterances: Iterable[list[Utterance]], norm: Normalizer,
    device: torch.device, batch_size: int, count: int, seed: int,
) -> tuple[np.ndarray, int]:  # fmt: skip
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
        raise FileNotFoundError(f"{path}: missing; it is written by the align stage "
                                "(run `dvc repro align`)")  # fmt: skip
    phones = pq.read_table(path).to_pandas()
    if list(phones.columns) != INTERVAL_COLUMNS:
        raise ValueError(f"{path}: columns {list(phones.columns)}, expected {INTERVAL_COLUMNS}")
    return phones


def codebook_table(codebook: np.ndarray) -> pa.Table:
    """The quantizer's code vectors [K, E] as a table: code, vector."""
    k, dim = codebook.shape
    flat = pa.array(codebook.astype(np.float32).reshape(-1))
    return pa.table({
        "code": pa.array(np.arange(k), pa.int32()),
        "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
    })  # fmt: skip


def read_codes(folder: str | os.PathLike[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """data/codes back: the frame table (sorted by utterance_id, frame), its latents [N, E] in
    the same row order, and the codebook [K, E]."""
    folder = Path(folder)
    table = pq.read_table(folder / "codes.parquet")
    frames = table.drop(["latent"]).to_pandas()
    latents = _matrix(table.column("latent"))
    key = frames[["utterance_id", "frame"]]
    if not (key.sort_values(["utterance_id", "frame"]).index == key.index).all():
        raise ValueError(f"{folder / 'codes.parquet'}: rows not sorted by (utterance_id, frame)")
    book = pq.read_table(folder / "codebook.parquet")
    codebook = _matrix(book.column("vector"))
    if (book.column("code").to_numpy() != np.arange(len(codebook))).any():
        raise ValueError(f"{folder / 'codebook.parquet'}: codes are not 0..K-1 in order")
    return frames, latents, codebook


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    flat = column.combine_chunks()
    return flat.values.to_numpy(zero_copy_only=False).reshape(len(flat), flat.type.list_size)
