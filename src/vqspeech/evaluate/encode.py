"""Codes for whole held-out utterances, joined with ground-truth phones at the same 20 ms rate.

Latent k stands for feature frames 2k and 2k+1 (docs/design.md "Frames and time"); its ground-truth
label is the phone at the centre of those two frames, 17.5 ms after frame 2k starts at the default
hop and window, read from the utterance's TextGrid (shifted by the features' `start_s`). Codes and
labels are joined on (utterance_id, frame) explicitly; frames on one side only are reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from vqspeech.data.textgrid import Interval, PhoneAlignment, fit_to_duration, read_phones
from vqspeech.evaluate.codes import INTERVAL_COLUMNS, Aligned, JoinReport
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


def coded_shard(
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
