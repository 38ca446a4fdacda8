"""Phone alignments as TextGrids, in the layout the Montreal Forced Aligner writes.

One reader for every corpus: MFA's VCTK alignments, user folders and the built-in corpus all go
through `read_phones`, which returns labels normalized to `vqspeech.phones.INVENTORY`.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from pathlib import Path

from praatio import textgrid as praat_textgrid
from praatio.data_classes.interval_tier import IntervalTier
from praatio.data_classes.textgrid import Textgrid

from vqspeech import phones
from vqspeech.io import atomic

PHONE_TIER = "phones"


class TextGridError(ValueError):
    """A TextGrid that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    label: str


@dataclass(frozen=True)
class PhoneAlignment:
    """The phone tier of one utterance; `duration` is the tier's end (xmax) in seconds."""

    intervals: tuple[Interval, ...]
    duration: float

    @property
    def labels(self) -> list[str]:
        return [iv.label for iv in self.intervals]


def fit_to_duration(intervals: list[Interval], duration: float) -> list[Interval]:
    """Clip or extend the alignment so that it ends exactly at `duration` seconds.

    Synthesizers report phone end times that can overrun the samples they write (or stop short of
    them); intervals that start at or after `duration` are dropped and the last one is stretched
    or cut to end at `duration`.
    """
    if duration <= 0:
        raise ValueError(f"duration must be positive, got {duration}")
    kept = [iv for iv in intervals if iv.start < duration]
    if not kept:
        raise ValueError("no interval starts before the end of the audio")
    last = kept[-1]
    kept[-1] = Interval(last.start, duration, last.label)
    return kept


def write_phones(
    path: str | os.PathLike[str],
    intervals: list[Interval],
    duration: float,
    words: list[Interval] | None = None,
) -> None:
    """Atomically write a TextGrid with a `words` tier (when given) and a `phones` tier."""
    tg = Textgrid(0.0, duration)
    if words is not None:
        tg.addTier(IntervalTier("words", [_entry(iv) for iv in words], 0.0, duration))
    tg.addTier(IntervalTier(PHONE_TIER, [_entry(iv) for iv in intervals], 0.0, duration))
    with atomic.atomic_path(path) as tmp:
        tg.save(str(tmp), format="long_textgrid", includeBlankSpaces=True, reportingMode="error")


def _entry(iv: Interval) -> tuple[float, float, str]:
    return (float(iv.start), float(iv.end), iv.label)


def _check_encoding(path: Path) -> None:
    """The problems praatio reports only as an IndexError: an empty file, UTF-16 with no BOM."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TextGridError(f"{path}: unreadable TextGrid ({exc.strerror or exc})") from None
    if not data.strip():
        what = "0 bytes" if not data else "only whitespace"
        raise TextGridError(f"{path}: empty file ({what})")
    # praatio tells UTF-16 from UTF-8 by the byte-order mark alone; without one, the NUL bytes
    # of UTF-16 read as UTF-8 and no line matches.
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and b"\x00" in data[:64]:
        raise TextGridError(
            f"{path}: UTF-16 text without a byte-order mark; save it as UTF-8 (or UTF-16 with a "
            "BOM, as Praat writes it)"
        )


def read_phones(path: str | os.PathLike[str]) -> PhoneAlignment:
    """Read and validate the `phones` tier of a TextGrid.

    Time not covered by an interval is silence (MFA 2.x leaves silences out), so gaps become
    `sil`, and so does the time before a grid that starts after 0 s. Raises TextGridError naming
    the file when it is missing, does not parse, has no `phones` tier or no labelled interval in
    it, has overlapping intervals, or holds a label outside the inventory.
    """
    path = Path(path)
    if not path.is_file():
        raise TextGridError(f"{path}: TextGrid not found")
    _check_encoding(path)
    try:
        tg = praat_textgrid.openTextgrid(
            str(path), includeEmptyIntervals=True, reportingMode="error"
        )
    except UnicodeDecodeError as exc:
        raise TextGridError(
            f"{path}: neither UTF-8 nor UTF-16 text (byte 0x{exc.object[exc.start]:02x} at offset "
            f"{exc.start}); save it as UTF-8"
        ) from exc
    except IndexError as exc:  # praatio indexes past the last line of a file cut short
        raise TextGridError(
            f"{path}: not a readable TextGrid (it ends before its tiers are complete)"
        ) from exc
    except Exception as exc:  # praatio raises bare ValueError and others on malformed files
        reason = f"{type(exc).__name__}: {exc}"
        raise TextGridError(f"{path}: not a readable TextGrid ({reason})") from exc
    if PHONE_TIER not in tg.tierNames:
        raise TextGridError(f"{path}: no '{PHONE_TIER}' tier (tiers: {', '.join(tg.tierNames)})")
    tier = tg.getTier(PHONE_TIER)
    if not isinstance(tier, IntervalTier):
        raise TextGridError(f"{path}: tier '{PHONE_TIER}' is not an interval tier")
    if not any(label.strip() for _, _, label in tier.entries):
        raise TextGridError(f"{path}: tier '{PHONE_TIER}' has no labelled intervals")
    intervals = []
    unknown = set()
    previous_end = 0.0  # the audio starts at 0 s, whatever the grid's xmin: a later start is sil
    for start, end, label in tier.entries:
        if start < previous_end - 1e-6:
            raise TextGridError(f"{path}: overlapping intervals in '{PHONE_TIER}' at {start:.3f} s")
        if end <= start:
            raise TextGridError(f"{path}: empty interval at {start:.3f} s")
        if start > previous_end + 1e-6:  # MFA leaves silences out of the tier
            intervals.append(Interval(previous_end, float(start), "sil"))
        try:
            intervals.append(Interval(float(start), float(end), phones.normalize(label)))
        except phones.UnknownPhoneError:
            unknown.add(label)
        previous_end = float(end)
    if previous_end < tg.maxTimestamp - 1e-6:
        intervals.append(Interval(previous_end, float(tg.maxTimestamp), "sil"))
    if unknown:
        raise TextGridError(f"{path}: unknown phone labels {sorted(unknown)}")
    return PhoneAlignment(tuple(intervals), float(tg.maxTimestamp))
