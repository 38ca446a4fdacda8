"""Training data: one split of the feature shards in memory, normalized, cut into random crops.

Only numpy and pyarrow are needed (the train stage runs where librosa is not installed). The
crops of epoch e are a function of (seed, e) alone, so an interrupted run that resumes at the
start of an epoch sees the same batches it would have seen.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow.compute as pc

from vqspeech.features import shards
from vqspeech.features.stats import Normalizer

log = logging.getLogger(__name__)
HOP, WIN = 160, 400  # samples per 10 ms step and 25 ms window at 16 kHz (features/acoustic.py)


@dataclass
class SplitData:
    features: np.ndarray  # float32 [N, D], normalized
    offsets: np.ndarray  # int64 [U + 1]: utterance u is features[offsets[u]:offsets[u + 1]]
    speakers: np.ndarray  # int64 [U]: index into the training speakers, -1 if unseen
    utterance_ids: list[str]
    audio: np.ndarray | None = None  # int16 [S]: utterance u is audio[audio_offsets[u]:...]
    audio_offsets: np.ndarray | None = None  # int64 [U + 1]
    targets: np.ndarray | None = None  # float32 [N, D'], the decoder's when not the input
    views: np.ndarray | None = None  # float32 [V, N, D]: renditions (train.views; train only)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def load_split(
    folder: str | os.PathLike[str],
    split: str,
    norm: Normalizer,
    speaker_index: dict[str, int] | None = None,
    audio: bool = False,
    hop: int = HOP,
    win: int = WIN,
    paths: list[Path] | None = None,
    frames: int | None = None,
) -> tuple[SplitData, list[str]]:
    """Load every utterance of `split` (of the shards `paths`, default: every shard of `folder`,
    in that order); returns the data and the sorted speakers of what was loaded.

    Speakers are numbered by `speaker_index` (unknown ones get -1), or, when it is None, by
    their sorted order in this split. With `audio`, the int16 samples are loaded too and each
    utterance must have the samples its frames cover (frame i = samples [hop i, hop i + win)).
    `frames`, when the caller knows it (an index of the shards), is the split's frame count in
    `paths`, which saves reading their n_frames first. Raises ValueError on an empty split,
    non-finite features, missing audio, or frames other than expected.
    """
    ids, spk, lengths, waves, audio_lengths = [], [], [], [], []
    columns = ["utterance_id", "speaker", "split", "n_frames", "features"]
    paths = shards.files(folder) if paths is None else paths
    # the frames go straight into one array, normalized a shard at a time: memory is the
    # split's frames and one shard's, not several copies of the split (float64 temporaries)
    total = 0 if frames is None else frames  # `frames`: the caller's index knows them already
    for path in paths if frames is None else ():
        table = shards.read(path, columns=["split", "n_frames"])
        total += int(
            pc.sum(table.filter(pc.equal(table.column("split"), split)).column("n_frames")).as_py()
            or 0
        )
    dim = len(norm.mean)
    out = np.empty((total, dim), dtype=np.float32)
    filled = 0
    for path in paths:
        table = shards.read(path, columns=columns + (["audio"] if audio else []))
        table = table.filter(pc.equal(table.column("split"), split))
        if table.num_rows == 0:
            continue
        feats = table.column("features").combine_chunks()
        if feats.type.value_type.list_size != dim:
            raise ValueError(
                f"features have {feats.type.value_type.list_size} dimensions but "
                f"the stats have {dim}"
            )
        x = feats.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
        if not np.isfinite(x).all():
            raise ValueError(f"{path}: non-finite feature values in split {split!r}")
        source = "the n_frames columns say" if frames is None else "the index has"
        if filled + len(x) > total:
            raise ValueError(f"{path}: more {split!r} frames than {source} ({total})")
        out[filled : filled + len(x)] = norm(x)
        filled += len(x)
        ids += table.column("utterance_id").to_pylist()
        spk += table.column("speaker").to_pylist()
        lengths += table.column("n_frames").to_pylist()
        if audio:
            column = table.column("audio").combine_chunks()
            have = column.value_lengths().to_numpy(zero_copy_only=False)
            need = hop * (np.asarray(table.column("n_frames")) - 1) + win
            short = np.flatnonzero(have < need)
            if len(short):
                i = int(short[0])
                raise ValueError(
                    f"{path}: {len(short)} utterances have fewer audio samples than their frames "
                    f"cover (first: {table.column('utterance_id')[i]}, {int(have[i])} < "
                    f"{int(need[i])}); rerun the features stage with features.audio: true"
                )
            waves.append(column.flatten().to_numpy(zero_copy_only=False).astype(np.int16))
            audio_lengths += have.tolist()
    if not ids:
        raise ValueError(f"{folder}: no {split!r} utterances in the feature shards")
    if filled != total:
        names = [Path(p).name for p in paths]
        source = "the n_frames columns say" if frames is None else "the index has"
        raise ValueError(f"{names}: {filled} {split!r} frames where {source} {total}")
    names = sorted(set(spk))
    index = speaker_index if speaker_index is not None else {s: i for i, s in enumerate(names)}
    x = out
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    speakers = np.array([index.get(s, -1) for s in spk], dtype=np.int64)
    data = SplitData(x, offsets, speakers, ids)
    if audio:
        data.audio = np.concatenate(waves)
        data.audio_offsets = np.concatenate([[0], np.cumsum(audio_lengths)]).astype(np.int64)
    return data, names


def load_train_val(
    folder: str | os.PathLike[str], norm: Normalizer, audio: bool = False
) -> tuple[SplitData, SplitData | None, list[str]]:
    """The train split, the val split (None, with a warning, when it has no utterances or
    cannot be used) numbered by the train speakers, and the train speakers."""
    train, speakers = load_split(folder, "train", norm, audio=audio)
    try:
        index = {s: i for i, s in enumerate(speakers)}
        val, _ = load_split(folder, "val", norm, index, audio=audio)
    except ValueError as err:
        log.warning("no validation: %s", err)
        val = None
    return train, val, speakers


class Spans(Protocol):
    """What drawing crops needs of a split: its utterances' lengths and speakers (a SplitData,
    or a streamed split's index without the frames)."""

    @property
    def lengths(self) -> np.ndarray: ...

    @property
    def speakers(self) -> np.ndarray: ...


def random_crops(
    data: Spans, crop: int, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` random crops, uniform over every valid start position in the split.

    Returns (utterance index [count], start frame [count]). Raises ValueError when no utterance
    is as long as `crop`.
    """
    starts_per_utt = np.maximum(data.lengths - crop + 1, 0)
    total = int(starts_per_utt.sum())
    if total == 0:
        raise ValueError(
            f"crop of {crop} frames is longer than every utterance "
            f"(longest: {int(data.lengths.max())} frames)"
        )
    flat = rng.integers(0, total, size=count)
    cum = np.cumsum(starts_per_utt)
    utt = np.searchsorted(cum, flat, side="right")
    start = flat - (cum[utt] - starts_per_utt[utt])
    return utt, start


def batch(
    data: SplitData, utt: np.ndarray, start: np.ndarray, crop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Gather crops: features [B, crop, D] and speaker ids [B]."""
    return data.features[crop_rows(data, utt, start, crop)], data.speakers[utt]


def crop_rows(data: SplitData, utt: np.ndarray, start: np.ndarray, crop: int) -> np.ndarray:
    """The frame rows [B, crop] of the crops (utterance utt_b from frame start_b)."""
    return data.offsets[utt][:, None] + start[:, None] + np.arange(crop)[None, :]


def batch_targets(data: SplitData, utt: np.ndarray, start: np.ndarray, crop: int) -> np.ndarray:
    """The decoder targets of the same crops [B, crop, D'] (`model.target` other than input)."""
    if data.targets is None:
        raise ValueError("this split has no decoder targets (vqspeech.train.targets)")
    return data.targets[crop_rows(data, utt, start, crop)]


def batch_audio(
    data: SplitData, utt: np.ndarray, start: np.ndarray, crop: int, hop: int = HOP
) -> np.ndarray:
    """The samples of the same crops: int16 [B, crop * hop], crop b = samples
    [hop start_b, hop (start_b + crop)) of its utterance, i.e. the hop-long stretch each of the
    crop's frames starts with (the window of frame i reaches win - hop samples further)."""
    if data.audio is None or data.audio_offsets is None:
        raise ValueError("this split was loaded without audio (load_split(..., audio=True))")
    rows = data.audio_offsets[utt][:, None] + hop * start[:, None] + np.arange(crop * hop)[None, :]
    return data.audio[rows]


def epoch_batches(
    data: Spans,
    crop: int,
    batch_size: int,
    seed: int,
    epoch: int,
    speakers_per_batch: int = 0,
    key: tuple[int, ...] = (),
    distinct: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The (utterance, start) index arrays of every batch of one epoch: about one crop per
    `crop` frames of the split, a function of (seed, epoch) only (and of `key`, which tells the
    windows of a streamed epoch apart: vqspeech.train.stream).

    With `speakers_per_batch` S > 0 every batch is S distinct speakers (drawn uniformly) x
    batch_size / S crops of each, uniform over that speaker's start positions, speaker-major
    (what VQ-CPC's same-speaker negatives need); with `distinct` (`model.cpc.distinct_utterances`)
    a speaker's crops come from as many distinct utterances, drawn uniformly among its
    utterances of at least `crop` frames, each crop uniform over its utterance's starts (the
    published VQ-CPC's S speakers x U utterances); 0: crops uniform over the split."""
    n_batches = batch_count(data, crop, batch_size)
    rng = np.random.default_rng([seed, epoch, *key])
    if speakers_per_batch:
        return _speaker_batches(
            data, crop, batch_size, speakers_per_batch, n_batches, rng, distinct
        )
    utt, start = random_crops(data, crop, n_batches * batch_size, rng)
    return [
        (utt[i : i + batch_size], start[i : i + batch_size])
        for i in range(0, n_batches * batch_size, batch_size)
    ]


def batch_count(data: Spans, crop: int, batch_size: int) -> int:
    """Batches in an epoch of `data`: one crop per `crop` frames, at least one batch."""
    return max(1, int(data.lengths.sum()) // crop // batch_size)


def _speaker_batches(
    data: Spans,
    crop: int,
    batch_size: int,
    n_speakers: int,
    n_batches: int,
    rng: np.random.Generator,
    distinct: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    if batch_size % n_speakers:
        raise ValueError(f"a batch of {batch_size} cannot hold {n_speakers} speakers equally")
    per = batch_size // n_speakers
    starts_per_utt = np.maximum(data.lengths - crop + 1, 0)
    pools = []  # per speaker with enough long utterances: its utterances and their start counts
    for s in np.unique(data.speakers):
        mine = np.flatnonzero((data.speakers == s) & (starts_per_utt > 0))
        if len(mine) >= (per if distinct else 1):
            pools.append((mine, np.cumsum(starts_per_utt[mine])))
    if len(pools) < n_speakers:
        raise ValueError(speakers_error(n_speakers, len(pools), crop, per, distinct))
    out = []
    for _ in range(n_batches):
        utts, starts = [], []
        for p in rng.choice(len(pools), n_speakers, replace=False):
            mine, cum = pools[p]
            if distinct:
                chosen = rng.choice(mine, per, replace=False)
                utts.append(chosen)
                starts.append(rng.integers(0, starts_per_utt[chosen]))
                continue
            flat = rng.integers(0, int(cum[-1]), size=per)
            k = np.searchsorted(cum, flat, side="right")
            utts.append(mine[k])
            starts.append(flat - (cum[k] - starts_per_utt[mine[k]]))
        out.append((np.concatenate(utts), np.concatenate(starts)))
    return out


def speakers_error(wanted: int, found: int, crop: int, per: int, distinct: bool) -> str:
    """Why a split (or window) cannot give batches of `wanted` speakers."""
    if distinct:
        return (
            f"model.cpc.speakers_per_batch is {wanted} with model.cpc.distinct_utterances, but "
            f"only {found} train speakers have {per} utterances (train.batch_size / "
            f"speakers_per_batch) of at least train.crop_frames = {crop} frames"
        )
    return (
        f"model.cpc.speakers_per_batch is {wanted}, but only {found} train speakers have an "
        f"utterance of at least train.crop_frames = {crop} frames"
    )
