"""Feature shards: Parquet files of one row per utterance, with a schema checked on read.

Row: `utterance_id, speaker, split, n_frames, start_s, features, phones, audio`, where `start_s`
is the time of frame 0's first sample in the original audio (non-zero when silence was trimmed),
`features` a list of fixed-size float32 vectors (one per 10 ms frame), `phones` one label per
frame, dictionary-encoded against the fixed label inventory so that indices agree across shards,
and `audio` the 16 kHz int16 samples the features were computed from (frame i covers samples
[hop i, hop i + win)), or an empty list when `features.audio` is false. The folder's
`index.json` lists the shards written into it; readers read those (`files`) and nothing else.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vqspeech.io import atomic
from vqspeech.phones import ARPABET, SILENCES

log = logging.getLogger(__name__)

HOP_S = 0.01  # one row of `features` per 10 ms frame, whatever the feature kind

LABELS: tuple[str, ...] = ARPABET + SILENCES
LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
_LABEL_TYPE = pa.dictionary(pa.int8(), pa.string())
_DICTIONARY = pa.array(LABELS, pa.string())
INDEX = "index.json"  # {"shards": {file name: utterances}}, written by `write`


class ShardError(ValueError):
    """A shard that does not have the expected schema; the message names the file."""


def schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("utterance_id", pa.string(), nullable=False),
            pa.field("speaker", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("n_frames", pa.int32(), nullable=False),
            pa.field("start_s", pa.float64(), nullable=False),
            pa.field("features", pa.list_(pa.list_(pa.float32(), dim)), nullable=False),
            pa.field("phones", pa.list_(_LABEL_TYPE), nullable=False),
            pa.field("audio", pa.list_(pa.int16()), nullable=False),
        ]
    )


COLUMNS: tuple[str, ...] = (
    "utterance_id",
    "speaker",
    "split",
    "n_frames",
    "start_s",
    "features",
    "phones",
    "audio",
)
FRAME_COLUMNS = [c for c in COLUMNS if c != "audio"]  # everything but the (large) audio


@dataclass(frozen=True)
class Utterance:
    utterance_id: str
    speaker: str
    split: str
    features: np.ndarray  # float32 [T, D]
    phones: list[str]  # T labels
    start_s: float = 0.0  # where frame 0 starts in the original audio
    audio: np.ndarray | None = None  # int16 samples the features came from; None = not kept

    def __post_init__(self) -> None:
        if len(self.phones) != len(self.features):
            raise ValueError(
                f"{self.utterance_id}: {len(self.features)} frames but {len(self.phones)} labels"
            )
        if self.audio is not None and self.audio.dtype != np.int16:
            raise ValueError(f"{self.utterance_id}: audio must be int16, not {self.audio.dtype}")


def to_table(utterances: list[Utterance], dim: int) -> pa.Table:
    offsets = np.cumsum([0] + [len(u.features) for u in utterances]).astype(np.int32)
    flat = np.concatenate([u.features for u in utterances]).astype(np.float32, copy=False)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), dim)
    codes = np.array([LABEL_INDEX[p] for u in utterances for p in u.phones], dtype=np.int8)
    labels = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), _DICTIONARY)
    waves = [u.audio if u.audio is not None else np.zeros(0, np.int16) for u in utterances]
    audio_offsets = np.cumsum([0] + [len(w) for w in waves]).astype(np.int32)
    samples = pa.array(np.concatenate(waves), pa.int16())
    return pa.table(
        [
            pa.array([u.utterance_id for u in utterances], pa.string()),
            pa.array([u.speaker for u in utterances], pa.string()),
            pa.array([u.split for u in utterances], pa.string()),
            pa.array([len(u.features) for u in utterances], pa.int32()),
            pa.array([u.start_s for u in utterances], pa.float64()),
            pa.ListArray.from_arrays(pa.array(offsets), vectors),
            pa.ListArray.from_arrays(pa.array(offsets), labels),
            pa.ListArray.from_arrays(pa.array(audio_offsets), samples),
        ],
        schema=schema(dim),
    )


def write(path: str | os.PathLike[str], utterances: list[Utterance], dim: int) -> None:
    """Atomically write one shard and list it in its folder's `index.json`."""
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        # byte-stream-split makes float32 features compress (13 % smaller, faster than plain zstd)
        pq.write_table(
            to_table(utterances, dim),
            tmp,
            compression="zstd",
            use_byte_stream_split=["features.list.element.list.element", "audio.list.element"],
            use_dictionary=["utterance_id", "speaker", "split", "phones.list.element"],
        )
    index = _read_index(path.parent) if (path.parent / INDEX).is_file() else {}
    index[path.name] = len(utterances)
    atomic.write_text(
        path.parent / INDEX, json.dumps({"shards": dict(sorted(index.items()))}, indent=1) + "\n"
    )


def _read_index(folder: Path) -> dict[str, int]:
    path = folder / INDEX
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))["shards"]
        if not isinstance(listed, dict):
            raise TypeError("'shards' is not a mapping")
        return {str(name): int(n) for name, n in listed.items()}
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{path}: not a shard index ({type(exc).__name__}: {exc})") from None


def files(folder: str | os.PathLike[str]) -> list[Path]:
    """The shards the features stage wrote into `folder`, as its `index.json` lists them.

    Any other `*.parquet` there (a stray copy, a file dropped in by hand) is not read, and a
    warning names it; a listed shard that is missing is an error."""
    folder = Path(folder)
    if not (folder / INDEX).is_file():
        if not any(folder.glob("*.parquet")):
            raise ShardError(f"{folder}: no feature shards (*.parquet)")
        raise ShardError(
            f"{folder}: no {INDEX}, the list of shards the features stage writes "
            "beside them; rebuild the folder with the features stage"
        )
    listed = _read_index(folder)
    missing = [name for name in listed if not (folder / name).is_file()]
    if missing:
        raise ShardError(f"{folder}: shards listed in {INDEX} are missing: {', '.join(missing)}")
    strays = sorted(p.name for p in folder.glob("*.parquet") if p.name not in listed)
    if strays and (folder, tuple(strays)) not in _warned:
        _warned.add((folder, tuple(strays)))
        log.warning(
            "%s: not read: %s (not in %s: not written by the features stage)",
            folder,
            ", ".join(strays),
            INDEX,
        )
    return [folder / name for name in listed]


_warned: set[tuple[Path, tuple[str, ...]]] = set()


def dim(folder: str | os.PathLike[str]) -> int:
    """The feature dimension of the shards in `folder` (from the first one's schema)."""
    return read_schema_dim(files(folder)[0])


def read_schema_dim(path: Path) -> int:
    """The feature dimension one shard's schema declares (ShardError if it is no shard)."""
    full = pq.read_schema(path)
    try:
        return int(full.field("features").type.value_type.list_size)
    except (KeyError, AttributeError):
        raise ShardError(f"{path}: not a feature shard (schema: {full})") from None


def checked(paths: Iterable[Path]) -> Iterator[Utterance]:
    """The utterances of the shards `paths` (frames, no audio), each checked: an utterance id
    in two shards, or a feature value that is NaN or infinite, is an error naming the shard and
    the utterance."""
    seen: dict[str, str] = {}
    for path in paths:
        for utt in utterances_of(read(path, FRAME_COLUMNS)):
            if utt.utterance_id in seen:
                raise ShardError(
                    f"{path}: utterance {utt.utterance_id!r} is also in {seen[utt.utterance_id]}"
                )
            seen[utt.utterance_id] = path.name
            bad = ~np.isfinite(utt.features)
            if bad.any():
                frame, column = np.argwhere(bad)[0]
                raise ShardError(
                    f"{path}: utterance {utt.utterance_id!r} has {int(bad.sum())} "
                    f"NaN/infinite feature values (the first at frame {frame}, "
                    f"dimension {column}); rebuild it with the features stage"
                )
            yield utt


def read(path: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """Read one shard, checking its schema (dimension taken from the file)."""
    table = pq.read_table(path, columns=columns)
    full = pq.read_schema(path)
    expected = schema(read_schema_dim(Path(path)))
    if not full.equals(expected):
        raise ShardError(f"{path}: schema mismatch:\n{full}\nexpected\n{expected}")
    return table


def iter_utterances(
    folder: str | os.PathLike[str], split: str | None = None, audio: bool = False
) -> Iterator[Utterance]:
    """Every utterance of every shard in `folder`, optionally of one split, shard by shard; the
    audio column is read only when `audio` is true."""
    for shard in iter_shards(folder, split, audio):
        yield from shard


def iter_shards(
    folder: str | os.PathLike[str], split: str | None = None, audio: bool = False
) -> Iterator[list[Utterance]]:
    """The utterances of `iter_utterances`, a shard's at a time (shards without any left out)."""
    for path in files(folder):
        table = read(path, columns=list(COLUMNS) if audio else FRAME_COLUMNS)
        if split is not None:
            table = table.filter(pc.equal(table.column("split"), split))
        if table.num_rows:
            yield list(utterances_of(table))


def utterances_of(table: pa.Table) -> Iterator[Utterance]:
    """The rows of a shard table as Utterances (slices and filtered tables included)."""
    if table.num_rows == 0:
        return
    feats = table.column("features").combine_chunks()
    dim = feats.type.value_type.list_size
    # flatten() honours slice offsets, unlike .values
    flat = feats.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    labels = table.column("phones").combine_chunks().flatten()
    names = np.array(labels.dictionary.to_pylist(), dtype=object)
    codes = labels.indices.to_numpy(zero_copy_only=False)
    bounds = np.cumsum([0, *table.column("n_frames").to_pylist()])
    names_ = ("utterance_id", "speaker", "split", "start_s")
    columns = (table.column(c).to_pylist() for c in names_)
    waves = _audio_of(table) if "audio" in table.column_names else None
    for i, (uid, spk, split, start) in enumerate(zip(*columns, strict=True)):
        a, b = bounds[i], bounds[i + 1]
        wave = waves[i] if waves is not None and len(waves[i]) else None
        yield Utterance(uid, spk, split, flat[a:b], names[codes[a:b]].tolist(), start, wave)


def _audio_of(table: pa.Table) -> list[np.ndarray]:
    column = table.column("audio").combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False)
    lengths = column.value_lengths().to_numpy(zero_copy_only=False)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(lengths))]
