"""The manifest: the one index of a corpus that every later stage reads.

`data/manifest.parquet` has one row per utterance with the columns of `SCHEMA`. Every corpus
produces `Candidate`s; `build` checks each one (id unique, audio readable and non-empty, TextGrid
readable, labels known, lengths agreeing, transcript decodable) and either fails naming every bad
file or, with `on_error="skip"`, leaves them out and lists them in the report.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from vqspeech.data.textgrid import TextGridError, read_phones
from vqspeech.io import atomic
from vqspeech.io.progress import progress
from vqspeech.io.skips import Skip, enforce

SCHEMA = pa.schema(
    [
        pa.field("utterance_id", pa.string(), nullable=False),
        pa.field("speaker", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("textgrid", pa.string(), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
    ]
)


class ManifestError(ValueError):
    """A manifest that cannot be built or read (nothing usable, wrong schema)."""


class TranscriptError(ValueError):
    """A transcript file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Candidate:
    """An utterance found by a corpus builder.

    `audio` and `textgrid` are where the files are read now (errors name them); `stored_audio`
    and `stored_textgrid` are their paths relative to the corpus folder the manifest points at.
    The text is `text`, or the content of `transcript`, read by `check` so that a bad file is a
    bad utterance like any other.
    """

    utterance_id: str
    speaker: str
    audio: Path
    textgrid: Path | None
    stored_audio: PurePosixPath
    stored_textgrid: PurePosixPath
    text: str = ""
    transcript: Path | None = None
    problem: ValueError | None = None  # found while preparing it (e.g. it could not be aligned)


def read_transcript(path: Path) -> str:
    """A transcript's stripped text, or TranscriptError naming the file."""
    try:
        return path.read_text(encoding="utf-8-sig").strip()  # -sig: tolerate Notepad's BOM
    except UnicodeDecodeError as exc:
        raise TranscriptError(
            f"{path}: transcript is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from None
    except OSError as exc:
        raise TranscriptError(f"{path}: unreadable transcript ({exc.strerror})") from None


def check(candidate: Candidate, tolerance_s: float) -> tuple[float, int, str]:
    """Validate one utterance: (duration_s, sample_rate, text), or ValueError naming the file."""
    audio = candidate.audio
    if candidate.problem is not None:
        raise candidate.problem
    if not audio.is_file():
        raise ValueError(f"{audio}: audio file not found")
    try:
        info = sf.info(str(audio))
    except Exception as exc:  # libsndfile reports every decoding problem as a RuntimeError
        raise ValueError(f"{audio}: unreadable audio ({exc})") from exc
    if info.frames <= 0:
        raise ValueError(f"{audio}: empty audio (0 samples)")
    duration = info.frames / info.samplerate
    if candidate.textgrid is None:
        raise ValueError(
            f"{audio}: no TextGrid found for this utterance, and no .lab/.txt "
            "transcript beside it to align (data.aligner)"
        )
    alignment = read_phones(candidate.textgrid)
    if abs(alignment.duration - duration) > tolerance_s:
        raise TextGridError(
            f"{candidate.textgrid}: ends at {alignment.duration:.3f} s but the audio "
            f"{audio.name} lasts {duration:.3f} s (tolerance {tolerance_s} s)"
        )
    text = read_transcript(candidate.transcript) if candidate.transcript else candidate.text
    return duration, int(info.samplerate), text


def build(
    candidates: list[Candidate],
    stored_root: PurePosixPath,
    on_error: str,
    tolerance_s: float,
    jobs: int,
) -> tuple[pa.Table, list[Candidate], list[Skip]]:
    """Check every candidate; return the manifest table, the kept candidates and the skips.

    The manifest records each file under `stored_root`, where the corpus lives once committed.
    Utterances that share an id are all bad: which one is meant cannot be told. Raises
    BadInputError listing every bad file when `on_error="fail"`, ManifestError when none is left.
    """
    by_id: dict[str, list[Candidate]] = defaultdict(list)
    for c in candidates:
        by_id[c.utterance_id].append(c)

    def run(c: Candidate) -> tuple[float, int, str] | Skip:
        others = [o for o in by_id[c.utterance_id] if o is not c]
        if others:
            also = ", ".join(str(o.audio) for o in others)
            return Skip(
                c.utterance_id,
                str(c.audio),
                f"{c.audio}: utterance id {c.utterance_id!r} is also the id of {also}",
            )
        try:
            return check(c, tolerance_s)
        except ValueError as exc:
            return Skip(c.utterance_id, str(_bad_file(c, exc)), str(exc))

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(
            progress(pool.map(run, candidates), total=len(candidates), desc="check", unit="utt")
        )
    skipped = [r for r in results if isinstance(r, Skip)]
    enforce(skipped, on_error, "data.on_error")
    rows = [(c, r) for c, r in zip(candidates, results, strict=True) if not isinstance(r, Skip)]
    if not rows:
        raise ManifestError(f"no usable utterances ({len(skipped)} skipped)")
    rows.sort(key=lambda cr: cr[0].utterance_id)
    table = pa.table(
        {
            "utterance_id": [c.utterance_id for c, _ in rows],
            "speaker": [c.speaker for c, _ in rows],
            "path": [str(stored_root / c.stored_audio) for c, _ in rows],
            "textgrid": [str(stored_root / c.stored_textgrid) for c, _ in rows],
            "duration_s": [d for _, (d, _, _) in rows],
            "sample_rate": [sr for _, (_, sr, _) in rows],
            "text": [text for _, (_, _, text) in rows],
        },
        schema=SCHEMA,
    )
    return table, [c for c, _ in rows], skipped


def _bad_file(c: Candidate, exc: ValueError) -> Path:
    if isinstance(exc, TextGridError) and c.textgrid is not None:
        return c.textgrid
    if isinstance(exc, TranscriptError) and c.transcript is not None:
        return c.transcript
    return c.audio


def materialize(candidates: list[Candidate], root: Path) -> None:
    """Copy each candidate's files to its stored place under `root`, unless already there."""
    for c in progress(candidates, desc="copy", unit="utt"):
        for src, rel in ((c.audio, c.stored_audio), (c.textgrid, c.stored_textgrid)):
            dst = root / rel
            if src is not None and src.resolve() != dst.resolve():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)


def write(table: pa.Table, path: str | os.PathLike[str]) -> None:
    """Atomically write the manifest as Parquet."""
    with atomic.atomic_path(path) as tmp:
        write_into(table, tmp)


def write_into(table: pa.Table, tmp: Path) -> None:
    """Write the manifest as Parquet into `tmp`, a path from atomic.atomic_path that commits it."""
    if not table.schema.equals(SCHEMA):
        raise ManifestError(f"manifest schema mismatch:\n{table.schema}\nexpected\n{SCHEMA}")
    pq.write_table(table, tmp, compression="zstd")


def read(path: str | os.PathLike[str]) -> pa.Table:
    """Read a manifest and check its schema."""
    table = pq.read_table(path)
    missing = [f.name for f in SCHEMA if f.name not in table.schema.names]
    if missing:
        raise ManifestError(f"{path}: manifest lacks columns {missing}")
    return table.select(SCHEMA.names).cast(SCHEMA)


def by_id(table: pa.Table, column: str) -> dict[str, str]:
    """utterance_id -> its value in `column` (e.g. "path", "textgrid")."""
    ids, values = table.column("utterance_id").to_pylist(), table.column(column).to_pylist()
    return dict(zip(ids, values, strict=True))


def summary(table: pa.Table, skipped: list[Skip], corpus: str) -> dict[str, object]:
    """Counts for `metrics/download.json`."""
    durations = table.column("duration_s").to_pylist()
    return {
        "corpus": corpus,
        "utterances": table.num_rows,
        "speakers": len(set(table.column("speaker").to_pylist())),
        "hours": round(sum(durations) / 3600, 4),
        "skipped": len(skipped),
    }


def report_text(skipped: list[Skip], stats: dict[str, object]) -> str:
    """The skip report's JSON."""
    report = {**stats, "skipped_utterances": [s.__dict__ for s in skipped]}
    return json.dumps(report, indent=2) + "\n"
