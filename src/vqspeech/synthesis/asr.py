"""Intelligibility of speech as a recognizer hears it: pocketsphinx's bundled US English acoustic
model, and the word error rate against the transcript (jiwer).

The GSLM line of work scores resynthesized units by the error rate of a strong ASR system. The
strong recognizers are not available offline here; pocketsphinx is, and its bundled general
language model hears the built-in corpus's semantically unpredictable sentences badly (about 75 %
word error on the original recordings). So by default (`synthesize.asr_vocabulary: corpus`) the
recognizer's language model is a uniform unigram over the words of the corpus's transcripts: a
closed-vocabulary word loop, which leaves the acoustics to decide (about 50 % on the originals).
`general` uses the bundled language model instead. Either way the same recognizer scores the
originals, the vocoder's ceiling and every system, so the numbers are comparable within a run.

Phones (`PhoneRecognizer`): the same acoustic model in pocketsphinx's allphone mode with its
bundled phone trigram (en-us-phone.lm.bin; language weight 2, wide beams, as its documentation
advises), and the phone error rate against the utterance's phones (`reference_phones`: its
frame labels as runs, silences left out), which needs no transcript and no word model.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16000


def unigram_arpa(vocabulary: Iterable[str]) -> str:
    """An ARPA language model text: every word (and the sentence end) equally likely."""
    words = sorted(set(vocabulary))
    if not words:
        raise ValueError("a closed-vocabulary language model needs at least one word")
    logp = math.log10(1.0 / (len(words) + 1))
    lines = [f"{logp:.6f} {w} 0.0000" for w in [*words, "</s>"]]
    head = ["\\data\\", f"ngram 1={len(words) + 2}", "", "\\1-grams:"]
    return "\n".join([*head, *lines, "-99.0000 <s> 0.0000", "", "\\end\\", ""])


def known_words(vocabulary: Iterable[str]) -> tuple[list[str], list[str]]:
    """(known, missing): the distinct words of `vocabulary` that the recognizer's pronunciation
    dictionary has, and those it lacks (which it can never hear), each sorted."""
    from pocketsphinx import Decoder

    probe = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
    words = sorted(set(vocabulary))
    missing = [w for w in words if probe.lookup_word(w) is None]
    return [w for w in words if w not in set(missing)], missing


def _decode(decoder: Any, audio: np.ndarray) -> Any:
    """`decoder` after decoding 16 kHz audio (float in [-1, 1], or int16) as one utterance, its
    feature state (cepstral mean, noise estimate) reset first: see `Listener`."""
    y = np.asarray(audio)
    if y.dtype != np.int16:
        y = np.round(np.clip(y, -1.0, 1.0) * 32767).astype(np.int16)
    decoder.reinit_feat()
    decoder.start_utt()
    decoder.process_raw(np.ascontiguousarray(y).tobytes(), full_utt=True)
    decoder.end_utt()
    return decoder


class Recognizer:
    """pocketsphinx's en-us decoder; `vocabulary` (the words it may hear) writes a unigram
    language model of them into `workdir` (None: the bundled general language model). Words the
    pronunciation dictionary lacks are a ValueError naming them."""

    def __init__(self, vocabulary: Sequence[str] | None = None, workdir: Path | None = None):
        from pocketsphinx import Decoder

        options: dict[str, object] = {"samprate": SAMPLE_RATE, "loglevel": "FATAL"}
        if vocabulary is not None:
            if workdir is None:
                raise ValueError("a closed vocabulary needs a workdir for its language model")
            missing = known_words(vocabulary)[1]
            if missing:
                raise ValueError(
                    f"not in the recognizer's pronunciation dictionary: {', '.join(missing[:10])}"
                    + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
                )
            path = Path(workdir) / "vocabulary.arpa"
            path.write_text(unigram_arpa(vocabulary))
            options["lm"] = str(path)
        self._decoder = Decoder(**options)

    def words(self, audio: np.ndarray) -> str:
        """The words heard in 16 kHz audio (float in [-1, 1], or int16), lower case."""
        d = _decode(self._decoder, audio)
        hyp = d.hyp()
        return " ".join(w for w in (hyp.hypstr if hyp else "").lower().split())


class PhoneRecognizer:
    """pocketsphinx's en-us decoder in allphone mode: the ARPAbet phones heard (fillers and
    silence left out)."""

    def __init__(self) -> None:
        import os

        from pocketsphinx import Decoder, get_model_path

        lm = os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin")
        options = {"allphone": lm, "lm": None, "lw": 2.0, "beam": 1e-20, "pbeam": 1e-20}
        self._decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **options)

    def phones(self, audio: np.ndarray) -> str:
        """The phones heard in 16 kHz audio (float in [-1, 1], or int16), space-separated."""
        from vqspeech.phones import ARPABET

        d = _decode(self._decoder, audio)
        return " ".join(seg.word for seg in d.seg() if seg.word in ARPABET)


class _Both:
    def __init__(self, vocabulary: Sequence[str] | None, workdir: Path | None, words: bool):
        import os

        if workdir is not None:  # a language model file of its own per process
            workdir = Path(workdir) / f"recognizer-{os.getpid()}"
            workdir.mkdir(parents=True, exist_ok=True)
        self.words = Recognizer(vocabulary, workdir) if words else None
        self.phones = PhoneRecognizer()

    def __call__(self, audio: np.ndarray) -> tuple[str | None, str]:
        return (None if self.words is None else self.words.words(audio)), self.phones.phones(audio)


_WORKER: _Both | None = None


def _start_worker(vocabulary: Sequence[str] | None, workdir: Path | None, words: bool) -> None:
    global _WORKER
    _WORKER = _Both(vocabulary, workdir, words)


def _hear(audio: np.ndarray) -> tuple[str | None, str]:
    assert _WORKER is not None
    return _WORKER(audio)


class Listener:
    """The words (`Recognizer`, when `words`) and the phones (`PhoneRecognizer`) heard in many
    utterances, over `jobs` processes. Each utterance is decoded on its own: pocketsphinx keeps
    feature state between utterances (the cepstral mean and noise estimates), so without a
    reset what it hears in one utterance depends on the ones decoded before it (on this
    corpus, 4 of 6 utterances heard differently in reverse order); with the reset, the order
    and the process an utterance lands in change nothing."""

    def __init__(
        self,
        vocabulary: Sequence[str] | None,
        workdir: Path | None,
        words: bool = True,
        jobs: int = 1,
    ):
        if words and vocabulary is not None:  # named here, not as a broken worker pool
            unigram_arpa(vocabulary)  # at least one word
            missing = known_words(vocabulary)[1]
            if missing:
                raise ValueError(
                    f"not in the recognizer's pronunciation dictionary: {', '.join(missing[:10])}"
                )
        self.args, self.words, self.jobs = (vocabulary, workdir, words), words, jobs

    def __call__(self, audios: Sequence[np.ndarray]) -> list[tuple[str | None, str]]:
        """(words heard, or None without `words`; phones heard) per audio, in order."""
        if self.jobs <= 1 or len(audios) < 2:
            both = _Both(*self.args)
            return [both(a) for a in audios]
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        spawn = multiprocessing.get_context("spawn")  # no fork of a process holding OpenMP
        jobs = min(self.jobs, len(audios))
        with ProcessPoolExecutor(jobs, spawn, _start_worker, self.args) as pool:
            return list(pool.map(_hear, audios))


def reference_phones(frame_labels: Sequence[str]) -> str:
    """An utterance's phone sequence from its 10 ms frame labels: each run of one label once,
    silences left out. Departure: two like phones in a row (the t t of "that time") are one run
    in frame labels, so they count as one phone."""
    from vqspeech.phones import SILENCES

    runs = [p for i, p in enumerate(frame_labels) if i == 0 or p != frame_labels[i - 1]]
    return " ".join(p for p in runs if p not in SILENCES)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word (or, of space-separated phones, phone) error rate: (substitutions + deletions
    + insertions) over all utterances / the references' word count (jiwer). An empty hypothesis
    counts every reference word deleted; ValueError when the lists differ in length or the
    references have no words."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not any(r.split() for r in references):
        raise ValueError("the references have no words")
    keep = [i for i, r in enumerate(references) if r.split()]
    out = jiwer.process_words([references[i] for i in keep], [hypotheses[i] for i in keep])
    edits = out.substitutions + out.deletions + out.insertions
    return edits / sum(len(references[i].split()) for i in keep)
