"""Phone alignments for utterances that have a transcript but no TextGrid: pocketsphinx.

The pocketsphinx wheel ships a US English acoustic model (continuous HMMs, 10 ms frames) and
CMUdict, whose phones are the project's ARPAbet. Alignment is pocketsphinx's own two passes:
word alignment of the transcript (`set_align_text`), then phone alignment within it
(`set_alignment`); optional silences between words come out as `sil`, noise as `spn`. Every word
of the transcript must be in the dictionary: `missing_words` lists those that are not, and the
utterance is bad (skipped or failed by `data.on_error`), never aligned around them.
Boundary accuracy against exact alignments is in docs/corpus.md (benchmarks/forcealign.py).
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import re
import threading
import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from vqspeech import phones
from vqspeech.data.manifest import Candidate, TranscriptError, read_transcript
from vqspeech.data.pcm import to_int16, within_full_scale
from vqspeech.data.textgrid import Interval, fit_to_duration, write_phones
from vqspeech.io.progress import progress

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FRAMES_PER_S = 100  # pocketsphinx's frame rate (times are frames / 100: exact ties)
_WORD = re.compile(r"[a-z0-9']+")
# Typographic punctuation as word processors type it: apostrophes and primes stay apostrophes
# (U+2019 in "it's" is one dictionary word), quotes and dashes separate words
_TYPOGRAPHIC = str.maketrans(
    {
        "\u2019": "'",
        "\u2018": "'",
        "\u02bc": "'",
        "\u2032": "'",
        "\u201c": " ",
        "\u201d": " ",
        "\u201e": " ",
        "\u00ab": " ",
        "\u00bb": " ",
        "\u2013": " ",
        "\u2014": " ",
        "\u2010": " ",
        "\u2011": " ",
        "\u2012": " ",
        "\u2015": " ",
    }
)


class AlignError(TranscriptError):
    """An utterance pocketsphinx cannot align; the message names its transcript and why."""


def words(text: str) -> list[str]:
    """A transcript as dictionary words: lower case, punctuation dropped (apostrophes kept,
    typographic ones U+2018/U+2019 included; typographic quotes and dashes separate words)."""
    text = unicodedata.normalize("NFC", text).translate(_TYPOGRAPHIC).lower()
    return [w.strip("'") for w in _WORD.findall(text) if w.strip("'")]


class Aligner:
    """One pocketsphinx decoder per thread (a decoder is not thread-safe)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _decoder(self):
        decoder = getattr(self._local, "decoder", None)
        if decoder is None:
            from pocketsphinx import Decoder

            # bestpath off: its lattice pass crashes phone alignment on long utterances
            decoder = Decoder(samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL")
            self._local.decoder = decoder
        return decoder

    def missing_words(self, transcript: Sequence[str]) -> list[str]:
        """The words of `transcript` that the dictionary lacks, each once, in order."""
        decoder = self._decoder()
        return list(dict.fromkeys(w for w in transcript if decoder.lookup_word(w) is None))

    def align(
        self, samples: np.ndarray, transcript: Sequence[str], what: str
    ) -> tuple[list[Interval], list[Interval]]:
        """(phones, words) of 16 kHz int16 `samples` saying `transcript`, from 0 to their end;
        the words tier leaves silences unlabelled, as MFA does."""
        missing = self.missing_words(transcript)
        if missing:
            raise AlignError(
                f"{what}: words not in the pronunciation dictionary: {', '.join(missing)}"
            )
        if not transcript:
            raise AlignError(f"{what}: empty transcript")
        decoder = self._decoder()
        data = np.ascontiguousarray(samples, dtype=np.int16).tobytes()
        try:
            decoder.set_align_text(" ".join(transcript))
            decoder.start_utt()
            decoder.process_raw(data, full_utt=True)
            decoder.end_utt()
            if decoder.hyp() is None:
                raise AlignError(f"{what}: pocketsphinx found no alignment of the transcript")
            decoder.set_alignment()
            decoder.start_utt()
            decoder.process_raw(data, full_utt=True)
            decoder.end_utt()
            alignment = decoder.get_alignment()
        except RuntimeError as exc:
            raise AlignError(f"{what}: pocketsphinx failed ({exc})") from None
        out: list[Interval] = []
        spoken: list[Interval] = []
        for word in alignment:
            name = re.sub(r"\(\d+\)$", "", word.name)  # was(2): the second pronunciation
            if not name.startswith(("<", "[", "+")):
                end = (word.start + word.duration) / FRAMES_PER_S
                spoken.append(Interval(word.start / FRAMES_PER_S, end, name))
            for phone in word:
                start = phone.start / FRAMES_PER_S
                end = (phone.start + phone.duration) / FRAMES_PER_S
                if out and start > out[-1].end:  # frames outside any phone: silence
                    out.append(Interval(out[-1].end, start, "sil"))
                elif not out and start > 0:
                    out.append(Interval(0.0, start, "sil"))
                out.append(Interval(start, end, _label(phone.name)))
        if not out:
            raise AlignError(f"{what}: pocketsphinx returned an empty alignment")
        return _merged(out), spoken


def _label(name: str) -> str:
    if name == "SIL":
        return "sil"
    if name.startswith("+"):  # +NSN+, +SPN+, ...: the model's noise phones
        return "spn"
    return phones.normalize(name)


def _merged(intervals: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for iv in intervals:
        if iv.end <= iv.start:
            continue
        if out and iv.label == out[-1].label == "sil":
            out[-1] = Interval(out[-1].start, iv.end, "sil")
        else:
            out.append(iv)
    return out


def load_16k(path: Path) -> np.ndarray:
    """An audio file as 16 kHz int16 mono (resampled with soxr when it is not; float audio
    beyond full scale scaled down, as the features stage does)."""
    y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if sr != SAMPLE_RATE:
        import soxr

        y = soxr.resample(y, sr, SAMPLE_RATE, quality="HQ")
    return to_int16(within_full_scale(y)[0])


def write_alignment(
    aligner: Aligner, samples: np.ndarray, text: str, textgrid: Path, transcript: Path
) -> None:
    """Align 16 kHz `samples` to `text` (read from `transcript`); write the TextGrid `textgrid`
    (a `words` and a `phones` tier, as MFA writes)."""
    duration = len(samples) / SAMPLE_RATE
    intervals, spoken = aligner.align(samples, words(text), str(transcript))
    spoken = [iv for iv in spoken if iv.start < duration]
    spoken = [Interval(iv.start, min(iv.end, duration), iv.label) for iv in spoken]
    write_phones(textgrid, fit_to_duration(intervals, duration), duration, spoken)


def align_candidates(candidates: list[Candidate], root: Path, jobs: int) -> list[Candidate]:
    """Every candidate with a transcript but no TextGrid, aligned: its TextGrid written to its
    stored place under `root`; one that cannot be aligned carries the reason as its `problem`
    (the manifest then skips or fails it, per data.on_error). Others are returned as they are."""
    todo = [i for i, c in enumerate(candidates) if c.textgrid is None and c.transcript]
    if not todo:
        return candidates
    log.info(
        "aligning %d utterances that have a transcript but no TextGrid (pocketsphinx)", len(todo)
    )
    aligner = Aligner()

    def run(i: int) -> Candidate:
        c = candidates[i]
        grid = root / c.stored_textgrid
        try:
            samples = load_16k(c.audio)
        except (OSError, RuntimeError):
            return c  # missing or unreadable audio: the manifest's check names it
        try:
            grid.parent.mkdir(parents=True, exist_ok=True)
            write_alignment(aligner, samples, read_transcript(c.transcript), grid, c.transcript)
        except TranscriptError as exc:
            return dataclasses.replace(c, problem=exc)
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:  # a full disk stops the stage, never a skip
                raise
            problem = AlignError(
                f"{c.transcript}: cannot write its alignment to {grid} ({exc.strerror or exc})"
            )
            return dataclasses.replace(c, problem=problem)
        return dataclasses.replace(c, textgrid=grid)

    out = list(candidates)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = pool.map(run, todo)
        for i, c in zip(
            todo, progress(done, total=len(todo), desc="align", unit="utt"), strict=True
        ):
            out[i] = c
    return out


def boundary_errors(reference: Sequence[Interval], hypothesis: Sequence[Interval]) -> np.ndarray:
    """|reference - hypothesis| (s) of every phone boundary both alignments share: the speech
    phone sequences are matched (difflib; a pronunciation the two disagree on is left out) and
    each matched phone's start and end compared. Silences are not phones here."""
    import difflib

    ref = [iv for iv in reference if iv.label not in phones.SILENCES]
    hyp = [iv for iv in hypothesis if iv.label not in phones.SILENCES]
    matcher = difflib.SequenceMatcher(
        a=[iv.label for iv in ref], b=[iv.label for iv in hyp], autojunk=False
    )
    errors = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            r, h = ref[block.a + k], hyp[block.b + k]
            errors += [abs(r.start - h.start), abs(r.end - h.end)]
    return np.asarray(errors, dtype=np.float64)
