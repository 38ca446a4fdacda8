"""Training data as a stream: the train split read from the feature shards a window at a time.

An epoch is a sequence of windows, each a few shards held in memory only while their batches
are cut: memory is bounded by `train.buffer_mb`, whatever the corpus size. When the whole split
fits in the buffer it is one window and the epoch is exactly the in-memory one (crops uniform
over every start position of the split, `crops.epoch_batches` with the rng of (seed, epoch)), so
the default run does not change. Otherwise the shards are shuffled per (seed, epoch), packed
into windows of at most `train.buffer_mb` of frames (a shard larger than that is a window of its
own), and each window gets its share of batches (one crop per `crop_frames` frames), uniform
over its own start positions, from the rng of (seed, epoch, window).

Every batch of an epoch has a global number. DDP rank r of W takes the batches g with g mod W =
r (the epoch cut to a multiple of W, so every rank takes as many steps), and data-loader worker
k of K takes the rank's j-th batch when j mod K = k. The DataLoader asks its workers in turn, so
a rank sees the same batches in the same order whatever K; each worker reads only the windows
that hold one of its batches, the next one in a thread while the current one's batches are cut
(so at most two windows are in memory per reader; a split of one window is read once, not every
epoch). A resumed run restarts at an epoch boundary with the same batches.

Only numpy, pyarrow and torch are needed (the train stage runs where librosa is not installed).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from vqspeech.features import shards
from vqspeech.features.stats import Normalizer
from vqspeech.params import Params
from vqspeech.train.crops import (
    HOP,
    SplitData,
    batch,
    batch_audio,
    batch_count,
    batch_targets,
    crop_rows,
    epoch_batches,
    load_split,
    load_train_val,
    speakers_error,
)

log = logging.getLogger(__name__)
INDEX_COLUMNS = ["speaker", "split", "n_frames"]


@dataclass(frozen=True)
class CropBatch:
    """One batch: features [B, crop, D], speaker ids [B], the crops' int16 samples [B, crop *
    hop] when the decoder needs audio, and the decoder targets [B, crop, D'] when they are not
    the input. With views (`train.views`), x holds each crop's drawn rendition and `clean` the
    original frames, which the objective is computed against."""

    x: np.ndarray
    speakers: np.ndarray
    audio: np.ndarray | None = None
    targets: np.ndarray | None = None
    clean: np.ndarray | None = None


def gather(
    data: SplitData,
    utt: np.ndarray,
    start: np.ndarray,
    crop: int,
    audio: bool,
    view: np.ndarray | None = None,
) -> CropBatch:
    """The crops (utterance utt_b of `data` from frame start_b) as a batch; `view` [B] picks
    each crop's rendition when `data` has views (0: the original, v: `data.views[v - 1]`)."""
    x, spk = batch(data, utt, start, crop)
    clean = None
    if view is not None and data.views is not None:
        clean, x = x, x.copy()
        rows = crop_rows(data, utt, start, crop)
        for b in np.flatnonzero(view > 0):
            x[b] = data.views[view[b] - 1][rows[b]]
    return CropBatch(
        x,
        spk,
        batch_audio(data, utt, start, crop) if audio else None,
        batch_targets(data, utt, start, crop) if data.targets is not None else None,
        clean,
    )


@dataclass(frozen=True)
class Window:
    """Part of an epoch: its utterances' lengths and speakers (what its crops are drawn from,
    known before its frames are read), the rng key that tells it apart, and its shards."""

    lengths: np.ndarray
    speakers: np.ndarray
    key: tuple[int, ...]
    shards: tuple[int, ...] = ()


@dataclass(frozen=True)
class IndexSpans:
    """A whole split's lengths and speakers (crops.Spans), without its frames."""

    lengths: np.ndarray
    speakers: np.ndarray


class Source:
    """Where a split's crops come from. Subclasses: `InMemory` (one window, the split loaded)
    and `Streamed` (windows of shards)."""

    input_dim: int
    output_dim: int | None  # the decoder targets' dimension; None: the input is the target
    n_speakers: int
    audio: bool  # whether batches carry the crops' samples
    utterances: int
    frames: int

    def spans(self) -> IndexSpans:
        raise NotImplementedError

    def windows(self, seed: int, epoch: int) -> list[Window]:
        raise NotImplementedError

    def load(self, window: Window) -> SplitData:
        raise NotImplementedError

    def take(self, utt: np.ndarray, start: np.ndarray, crop: int) -> CropBatch:
        """The crops by utterance number in the split (`spans()` order), in the order given."""
        raise NotImplementedError


class InMemory(Source):
    """A split already in memory (SplitData): one window, the split itself."""

    def __init__(self, data: SplitData, audio: bool = False):
        if audio and data.audio is None:
            raise ValueError("the split was loaded without audio")
        self.data, self.audio = data, audio
        self.input_dim = data.features.shape[1]
        self.output_dim = None if data.targets is None else data.targets.shape[1]
        self.n_speakers = int(data.speakers.max()) + 1  # load_split numbers them 0..n-1
        self.utterances, self.frames = len(data.utterance_ids), len(data.features)

    def spans(self) -> IndexSpans:
        return IndexSpans(self.data.lengths, self.data.speakers)

    def windows(self, seed: int, epoch: int) -> list[Window]:
        return [Window(self.data.lengths, self.data.speakers, ())]

    def load(self, window: Window) -> SplitData:
        return self.data

    def take(self, utt: np.ndarray, start: np.ndarray, crop: int) -> CropBatch:
        return gather(self.data, utt, start, crop, self.audio)


class Streamed(Source):
    """One split of the feature shards in `folder`, indexed (utterances, speakers, lengths per
    shard: a few columns, no frames) and read a window of shards at a time.

    Speakers are numbered by `speaker_index` (unknown ones get -1), or, when it is None, by
    their sorted order in the split (`speaker_names`). Raises ValueError when the split has no
    utterances.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        split: str,
        norm: Normalizer,
        buffer_bytes: float,
        speaker_index: dict[str, int] | None = None,
        audio: bool = False,
    ):
        self.folder, self.split, self.norm, self.audio = Path(folder), split, norm, audio
        self.buffer_bytes = buffer_bytes
        self.paths: list[Path] = []
        lengths, names, n_utterances = [], [], 0
        for path in shards.files(folder):
            table = shards.read(path, columns=INDEX_COLUMNS)
            table = table.filter(pc.equal(table.column("split"), split))
            if table.num_rows:
                self.paths.append(path)
                lengths.append(table.column("n_frames").to_numpy().astype(np.int64))
                names.append(table.column("speaker").to_pylist())
                n_utterances += table.num_rows
        if not self.paths:
            raise ValueError(f"{folder}: no {split!r} utterances in the feature shards")
        self.speaker_names = sorted({s for chunk in names for s in chunk})
        index = speaker_index or {s: i for i, s in enumerate(self.speaker_names)}
        self.speaker_index = index
        self._lengths = lengths
        self._speakers = [np.array([index.get(s, -1) for s in c], dtype=np.int64) for c in names]
        self._first = np.cumsum([0] + [len(c) for c in lengths])  # first utterance of each shard
        schema = pq.read_schema(self.paths[0])
        self.input_dim = schema.field("features").type.value_type.list_size
        self.output_dim = None
        self.n_speakers = len(index) if speaker_index is None else max(index.values()) + 1
        self.utterances = n_utterances
        self.frames = int(sum(c.sum() for c in lengths))
        per_frame = 4 * self.input_dim + (2 * HOP if audio else 0)
        self._bytes = [per_frame * int(c.sum()) for c in lengths]
        self._whole: SplitData | None = None

    def spans(self) -> IndexSpans:
        return IndexSpans(np.concatenate(self._lengths), np.concatenate(self._speakers))

    def windows(self, seed: int, epoch: int) -> list[Window]:
        if sum(self._bytes) <= self.buffer_bytes:
            return [self._window(tuple(range(len(self.paths))), ())]
        order = np.random.default_rng([seed, epoch, 1]).permutation(len(self.paths))
        groups: list[list[int]] = [[]]
        size = 0
        for s in order.tolist():
            if groups[-1] and size + self._bytes[s] > self.buffer_bytes:
                groups.append([])
                size = 0
            groups[-1].append(s)
            size += self._bytes[s]
        return [self._window(tuple(g), (2, w)) for w, g in enumerate(groups)]

    def _window(self, group: tuple[int, ...], key: tuple[int, ...]) -> Window:
        lengths = np.concatenate([self._lengths[s] for s in group])
        speakers = np.concatenate([self._speakers[s] for s in group])
        return Window(lengths, speakers, key, group)

    def load(self, window: Window) -> SplitData:
        if window.key == ():  # the whole split, one window every epoch: read it once
            if self._whole is None:
                self._whole = self._read(list(window.shards))
            return self._whole
        return self._read(list(window.shards))

    def _read(self, group: list[int]) -> SplitData:
        paths = [self.paths[s] for s in group]
        frames = sum(int(self._lengths[s].sum()) for s in group)
        data, _ = load_split(
            self.folder,
            self.split,
            self.norm,
            self.speaker_index,
            self.audio,
            paths=paths,
            frames=frames,
        )
        expected = sum(len(self._lengths[s]) for s in group)
        if len(data.utterance_ids) != expected:  # the shards changed under the stream
            names = [p.name for p in paths]
            raise ValueError(
                f"{self.folder}: {len(data.utterance_ids)} {self.split!r} "
                f"utterances in {names}, the index has {expected}"
            )
        return data

    def take(self, utt: np.ndarray, start: np.ndarray, crop: int) -> CropBatch:
        """Reads only the shards that hold one of the crops, one at a time."""
        shard = np.searchsorted(self._first, utt, side="right") - 1
        parts: list[tuple[np.ndarray, CropBatch]] = []
        for s in np.unique(shard).tolist():
            where = np.flatnonzero(shard == s)
            data = self._read([s])
            parts.append(
                (where, gather(data, utt[where] - self._first[s], start[where], crop, self.audio))
            )
        order = np.argsort(np.concatenate([w for w, _ in parts]), kind="stable")

        def joined(field: str) -> np.ndarray | None:
            arrays = [getattr(c, field) for _, c in parts]
            return None if arrays[0] is None else np.concatenate(arrays)[order]

        return CropBatch(joined("x"), joined("speakers"), joined("audio"), joined("targets"))


@dataclass(frozen=True)
class Plan:
    """How an epoch's batches are cut: crop frames, batch size, seed, and speakers per batch
    (VQ-CPC's same-speaker negatives; 0: crops uniform over the window)."""

    crop: int
    batch_size: int
    seed: int
    speakers_per_batch: int = 0
    distinct: bool = False  # model.cpc.distinct_utterances: a speaker's crops from distinct ones

    def counts(self, source: Source, epoch: int) -> tuple[list[Window], list[int]]:
        windows = source.windows(self.seed, epoch)
        return windows, [batch_count(w, self.crop, self.batch_size) for w in windows]

    def check(self, source: Source, epochs: int) -> None:
        """Raise ValueError now for any window of epochs 0..epochs-1 that could not be cut
        (no utterance as long as a crop; fewer speakers with one than a batch groups), rather
        than in the middle of training. Needs the index only."""
        seen: set[tuple[int, ...]] = set()
        for epoch in range(epochs):
            windows = source.windows(self.seed, epoch)
            for w in windows:
                if w.key != () and w.shards in seen:
                    continue
                seen.add(w.shards)
                where = f" (a window of {len(w.lengths)} utterances in epoch {epoch + 1})"
                self._check(w, "" if w.key == () else where)
            if len(windows) == 1 and windows[0].key == ():  # the whole split, every epoch
                return

    def _check(self, w: Window, where: str) -> None:
        usable = np.maximum(w.lengths - self.crop + 1, 0) > 0
        if not usable.any():
            raise ValueError(
                f"crop of {self.crop} frames is longer than every utterance{where} "
                f"(longest: {int(w.lengths.max())} frames)"
            )
        if not self.speakers_per_batch:
            return
        per = self.batch_size // self.speakers_per_batch
        _, counts = np.unique(w.speakers[usable], return_counts=True)
        n = int((counts >= (per if self.distinct else 1)).sum())
        if n < self.speakers_per_batch:
            why = speakers_error(self.speakers_per_batch, n, self.crop, per, self.distinct)
            raise ValueError(f"{why}{where}; raise train.buffer_mb to mix more shards")

    def steps(self, source: Source, epoch: int, world: int = 1) -> int:
        """Optimizer steps of one rank in `epoch`."""
        return sum(self.counts(source, epoch)[1]) // world

    def batches(
        self,
        source: Source,
        epoch: int,
        rank: int = 0,
        world: int = 1,
        worker: int = 0,
        workers: int = 1,
    ) -> Iterator[CropBatch]:
        """The batches of `epoch` that are rank `rank`'s (of `world`) and, of those, worker
        `worker`'s (of `workers`), in order."""
        windows, counts = self.counts(source, epoch)
        keep = sum(counts) // world * world  # every rank takes as many steps
        todo, first = [], 0
        for window, n in zip(windows, counts, strict=True):
            mine = [
                g - first
                for g in range(first, min(first + n, keep))
                if g % world == rank and (g // world) % workers == worker
            ]
            first += n
            if mine:
                todo.append((window, mine))
        # the next window is read in a thread while this one's batches train: at most two
        # windows in memory
        with ThreadPoolExecutor(1) as pool:
            ahead = pool.submit(source.load, todo[0][0]) if todo else None
            for i, (window, mine) in enumerate(todo):
                data = ahead.result()
                if i + 1 < len(todo):
                    ahead = pool.submit(source.load, todo[i + 1][0])
                cut = epoch_batches(
                    window,
                    self.crop,
                    self.batch_size,
                    self.seed,
                    epoch,
                    self.speakers_per_batch,
                    window.key,
                    self.distinct,
                )
                views = None
                if data.views is not None:  # each crop's rendition, 0 = the original
                    rng = np.random.default_rng([self.seed, epoch, *window.key, 3_000])
                    views = rng.integers(0, len(data.views) + 1, (len(cut), self.batch_size))
                for j in mine:
                    view = None if views is None else views[j, : len(cut[j][0])]
                    yield gather(data, *cut[j], self.crop, source.audio, view)
                del data


class _Epoch(IterableDataset):
    def __init__(self, plan: Plan, source: Source, epoch: int, rank: int, world: int):
        self.plan, self.source, self.epoch, self.rank, self.world = plan, source, epoch, rank, world

    def __iter__(self) -> Iterator[CropBatch]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        return self.plan.batches(self.source, self.epoch, self.rank, self.world, worker, workers)


def _same(x: CropBatch) -> CropBatch:
    return x


def loader(
    plan: Plan, source: Source, epoch: int, rank: int = 0, world: int = 1, workers: int = 0
) -> Iterable[CropBatch]:
    """The rank's batches of `epoch`: read in this process (`workers` = 0) or by that many
    data-loader worker processes, which read and cut the next batches while this one trains
    (the same batches, in the same order, either way)."""
    if workers == 0:
        return plan.batches(source, epoch, rank, world)
    windows = source.windows(plan.seed, epoch)
    if len(windows) == 1 and windows[0].key == ():  # read (once) here: the forked workers share it
        source.load(windows[0])
    # its own generator: the workers' seeds are not drawn from torch's global RNG, which the
    # model's jitter and VQ-CPC's negatives draw from (the workers draw nothing themselves)
    return DataLoader(
        _Epoch(plan, source, epoch, rank, world),
        batch_size=None,
        num_workers=workers,
        collate_fn=_same,
        prefetch_factor=4,
        generator=torch.Generator().manual_seed(plan.seed),
    )


def _add_logmel(train: SplitData, val: SplitData | None, params: Params) -> None:
    try:
        from vqspeech.train.targets import add_logmel_targets

        start = time.perf_counter()
        add_logmel_targets(train, val, params.features.preemphasis)
        log.info(
            "decoder targets (log mel energies of the shards' audio): %.1f s",
            time.perf_counter() - start,
        )
    except ValueError as err:
        raise ValueError(f"model.target logmel: {err}") from None
    except ImportError as err:  # the targets' mel filters come from librosa
        raise ValueError(
            f"model.target logmel needs librosa here ({err}); install the project's requirements"
        ) from None


def _add_views(train: SplitData, norm: Normalizer, params: Params) -> None:
    t = params.train
    try:
        from vqspeech.train.views import add_views

        start = time.perf_counter()
        add_views(train, norm, params.features, t.views, t.view_channel, t.view_warp, t.seed)
        log.info("views made in %.1f s", time.perf_counter() - start)
    except ValueError as err:
        raise ValueError(f"train.views: {err}") from None
    except ImportError as err:  # librosa (features) and pyroomacoustics (rooms)
        raise ValueError(
            f"train.views needs librosa and pyroomacoustics here ({err}); install the "
            "project's requirements"
        ) from None


def sources(
    features_dir: Path, norm: Normalizer, params: Params
) -> tuple[Source, Source | None, list[str]]:
    """The train stage's (train, val, speaker names): streamed from the shards a window of
    `train.buffer_mb` at a time, or with `model.target: logmel` or `train.views` held in memory
    (the targets or views are computed over the whole split from the shards' audio; needs
    librosa). No val split is a warning, not an error. The logmel targets use
    `features.preemphasis`, as the features."""
    model_cfg, cfg = params.model, params.train
    wavenet = model_cfg.decoder == "wavenet"  # the WaveNet learns the crops' samples
    if model_cfg.target == "logmel" or cfg.views:
        why = "model.target logmel" if model_cfg.target == "logmel" else "train.views"
        log.warning(
            "%s: the train split is held in memory, not streamed (train.buffer_mb does not apply)",
            why,
        )
        train, val, speakers = load_train_val(features_dir, norm, True)
        if model_cfg.target == "logmel":
            _add_logmel(train, val, params)
        if cfg.views:
            _add_views(train, norm, params)
        if not wavenet:
            for data in (train, val):
                if data is not None:
                    data.audio = data.audio_offsets = None
        return InMemory(train, wavenet), None if val is None else InMemory(val, wavenet), speakers
    streamed = Streamed(features_dir, "train", norm, cfg.buffer_mb * 2**20, audio=wavenet)
    try:
        val_data = Streamed(
            features_dir, "val", norm, float("inf"), streamed.speaker_index, wavenet
        )
    except ValueError as err:
        log.warning("no validation: %s", err)
        val_data = None
    return streamed, val_data, streamed.speaker_names
