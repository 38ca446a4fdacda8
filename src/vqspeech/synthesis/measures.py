"""The synthesize stage's library: choosing what to resynthesize, objective checks of the
synthesized speech, and the spectrogram comparison.

- `mel_cepstra`: c1..c24 of the natural-log amplitude of an 80-band mel spectrum (25 ms windows
  every 10 ms, the feature frames), as its cosine series ln A_k = c0 + 2 sum_d c_d cos(pi d (k +
  1/2) / 80), the convention behind MCD's factor 2 (an orthonormal DCT would give coefficients
  sqrt(160) times larger). c0 (energy) is left out, as usual. SPTK's all-pass mel-cepstra are
  close but not identical: compare values within this project and against the same-run floor;
- `mcd`: mel-cepstral distortion in dB, (10 / ln 10) sqrt(2 sum_d (c_d - c'_d)^2) averaged over
  frames (optionally only the frames a mask selects: the stage scores speech frames, because in
  digital silence any noise floor gives arbitrary log differences). A reconstruction is decoded
  from the original's own latents, so its frames line up with the original's one to one;
  sequences whose lengths differ by more than `max_offset` frames are an error rather than
  silently truncated;
- `SpeakerClassifier`: logistic regression on per-utterance MFCC mean and std, fitted on the
  training speakers; for voice conversion, the share of converted utterances it assigns to the
  target speaker.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from vqspeech.features.shards import Utterance
from vqspeech.model.wavenet import mulaw_decode, mulaw_encode
from vqspeech.synthesis.excerpts import SR

log = logging.getLogger(__name__)


MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def mel_cepstra(audio: np.ndarray, sr: int = 16000, n: int = 24) -> np.ndarray:
    """[T, n] mel-cepstral coefficients c1..cn (no c0), 25 ms windows every 10 ms."""
    import librosa

    power = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32),
        sr=sr,
        n_fft=int(0.025 * sr),
        hop_length=int(0.01 * sr),
        n_mels=80,
        center=False,
    )
    return cepstra(0.5 * np.log(np.maximum(power, 1e-10)).T, n)


def cepstra(log_amplitude: np.ndarray, n: int = 24) -> np.ndarray:
    """[T, K] log amplitudes -> [T, n] c1..cn of their cosine series (see the module doc)."""
    import scipy.fft

    k = log_amplitude.shape[-1]
    return scipy.fft.dct(log_amplitude, type=2, axis=-1)[..., 1 : n + 1] / (2 * k)


def mcd(
    reference: np.ndarray, test: np.ndarray, max_offset: int = 2, mask: np.ndarray | None = None
) -> float:
    """Mean mel-cepstral distortion (dB) between frame-aligned cepstra [T, D] and [T', D], over
    the frames where `mask` (length >= min(T, T')) is true, or all frames."""
    if reference.shape[1] != test.shape[1]:
        raise ValueError(f"cepstra of {reference.shape[1]} and {test.shape[1]} dimensions")
    if abs(len(reference) - len(test)) > max_offset:
        raise ValueError(f"{len(reference)} and {len(test)} frames: not aligned frame by frame")
    n = min(len(reference), len(test))
    keep = np.ones(n, bool) if mask is None else np.asarray(mask[:n], dtype=bool)
    if len(keep) < n or not keep.any():
        raise ValueError(f"mask of {len(keep)} frames selects none of {n} (or is too short)")
    diff = reference[:n][keep] - test[:n][keep]
    return float(np.mean(MCD_SCALE * np.sqrt((diff**2).sum(axis=1))))


def utterance_vector(mfcc: np.ndarray) -> np.ndarray:
    """Per-utterance summary for speaker identification: mean and std of each coefficient."""
    return np.concatenate([mfcc.mean(axis=0), mfcc.std(axis=0)])


class SpeakerClassifier:
    """Logistic regression on utterance vectors (standardized), seeded."""

    def __init__(self, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        classifier = LogisticRegression(max_iter=2000, random_state=seed)
        self.model = make_pipeline(StandardScaler(), classifier)

    def fit(self, utterances: Sequence[np.ndarray], speakers: Sequence[str]) -> SpeakerClassifier:
        if len(set(speakers)) < 2:
            raise ValueError("a speaker classifier needs at least two speakers")
        self.model.fit(np.stack([utterance_vector(u) for u in utterances]), list(speakers))
        return self

    def predict(self, utterances: Sequence[np.ndarray]) -> list[str]:
        return list(self.model.predict(np.stack([utterance_vector(u) for u in utterances])))

    def target_share(self, utterances: Sequence[np.ndarray], targets: Sequence[str]) -> float:
        """Share of utterances assigned to their target speaker (voice-conversion success)."""
        predicted = self.predict(utterances)
        return float(np.mean([p == t for p, t in zip(predicted, targets, strict=True)]))


def fitted_classifier(fit: Sequence[tuple[str, np.ndarray]], seed: int) -> SpeakerClassifier | None:
    """The speaker classifier fitted on the mel-cepstra of (speaker, audio) pairs; None for
    none."""
    if not fit:
        return None
    ceps = [mel_cepstra(a, SR) for _, a in fit]
    return SpeakerClassifier(seed).fit(ceps, [s for s, _ in fit])


def classifier_picks(
    speakers: Mapping[str, str], per_speaker: int, holdout: float, rng: np.random.Generator
) -> list[tuple[str, str, bool]]:
    """(speaker, utterance_id, held out) of up to `per_speaker` utterances of each speaker of
    `speakers` (utterance_id -> speaker, seeded, by speaker), the last `holdout` share of each
    speaker's pick held out (at least one); ValueError for a speaker with fewer than 2."""
    by_speaker: dict[str, list[str]] = {}
    for uid, speaker in speakers.items():
        by_speaker.setdefault(speaker, []).append(uid)
    out = []
    for speaker in sorted(by_speaker):
        pool = sorted(by_speaker[speaker])
        pick = [pool[i] for i in rng.choice(len(pool), min(per_speaker, len(pool)), False)]
        if len(pick) < 2:
            raise ValueError(f"speaker {speaker}: {len(pick)} utterance(s) with audio, need 2")
        n_test = max(1, round(holdout * len(pick)))
        out += [(speaker, uid, i >= len(pick) - n_test) for i, uid in enumerate(pick)]
    return out


def classifier_excerpts(
    speaker_of: Mapping[str, str],
    read: Callable[[list[str]], Mapping[str, Utterance]],
    per_speaker: int,
    holdout: float,
    samples: int,
    rng: np.random.Generator,
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(fit, test) lists of (speaker, float audio) for the speaker classifier: the
    `classifier_picks` of the training utterances `speaker_of` (utterance_id -> speaker), read
    with `read` (those alone), each cut to its first `samples` samples (the length of what is
    synthesized); ([], []) when the speakers are not `classifier_viable`."""
    if not classifier_viable(speaker_of.values()):
        return [], []
    picks = classifier_picks(speaker_of, per_speaker, holdout, rng)
    fit, test = classifier_audio(picks, read([uid for _, uid, _ in picks]), samples)
    log.info(
        "speaker classifier: %d + %d excerpts of %d training speakers",
        len(fit),
        len(test),
        len(set(speaker_of.values())),
    )
    return fit, test


def classifier_audio(
    picks: Sequence[tuple[str, str, bool]], utterances: Mapping[str, Utterance], samples: int
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(fit, test) of `classifier_picks`: each utterance's first `samples` samples, as float."""
    fit, test = [], []
    for speaker, uid, held in picks:
        u = utterances[uid]
        if u.audio is None:
            raise ValueError(f"{uid}: no audio in the feature shards (features.audio: false)")
        (test if held else fit).append((speaker, u.audio[:samples].astype(np.float32) / 32768))
    return fit, test


def classifier_viable(speakers: Iterable[str]) -> bool:
    """Whether there are 2 or more speakers with 2 or more utterances each (warns if not: the
    classifier's metrics are then null)."""
    counts = Counter(speakers)
    if len(counts) < 2 or min(counts.values()) < 2:
        log.warning(
            "speaker classifier skipped (its metrics are null): it needs 2 or more training "
            "speakers with 2 or more utterances each, found %s",
            dict(counts),
        )
        return False
    return True


def score(
    versions: Sequence[Sequence[tuple[str, np.ndarray]]],
    speech: Sequence[np.ndarray],
    goals: Sequence[Sequence[str]],
    fit: Sequence[tuple[str, np.ndarray]],
    test: Sequence[tuple[str, np.ndarray]],
    seed: int,
    decoder: str,
    n: int,
    speed: dict | None,
    classifier: SpeakerClassifier | None = None,
) -> dict:
    """metrics/synthesis.json. `versions` per utterance: [("original", audio)] (a deconv
    model) or [original, reconstruction, *conversions] (wavenet); `speech` its speech-frame
    masks (MCD is over speech frames); `fit`/`test` (speaker, audio) pairs for the speaker
    classifier (empty: its metrics are null), fitted here unless `classifier` is it, fitted
    (`fitted_classifier`)."""

    def ceps(audio: np.ndarray) -> np.ndarray:
        return mel_cepstra(audio, SR)

    def mean_mcd(triples) -> float:
        values = [mcd(ceps(a), ceps(b), mask=m) for a, b, m in triples]
        return round(float(np.mean(values)), 3)

    if classifier is None:
        classifier = fitted_classifier(fit, seed)
    originals = [v[0][1] for v in versions]
    mulaw = [mulaw_decode(mulaw_encode(torch.from_numpy(a))).numpy() for a in originals]
    wavenet = decoder == "wavenet"
    # versions: [original] (deconv) or [original, reconstruction, *conversions] (wavenet)
    recon = [v[1][1] for v in versions if len(v) > 1]
    conv = [[a for _, a in v[2:]] for v in versions]
    flat_goals = [t for g in goals for t in g]

    def share(audios: list[np.ndarray], goals: list[str]) -> float | None:
        if classifier is None or not audios:
            return None
        return round(classifier.target_share([ceps(a) for a in audios], goals), 4)

    conv_pairs = [(o, c, m) for o, cs, m in zip(originals, conv, speech, strict=True) for c in cs]
    recon_for_goals = [r for r, g in zip(recon, goals, strict=wavenet) for _ in g]  # [] for deconv
    return {
        "decoder": decoder,
        "utterances": len(versions),
        "seconds_each": round(n / SR, 3),
        "mcd_db": {
            "mulaw_original": mean_mcd(zip(originals, mulaw, speech, strict=True)),  # the floor
            "reconstruction": mean_mcd(zip(originals, recon, speech, strict=True))
            if wavenet
            else None,
            "conversion": mean_mcd(conv_pairs) if wavenet else None,
        },
        "speaker_classifier": {
            "heldout_accuracy": share([a for _, a in test], [s for s, _ in test]),
            "chance": round(1 / len({s for s, _ in fit}), 4) if fit else None,
            "conversion_target_share": share([c for _, c, _ in conv_pairs], flat_goals),
            # the same targets for the reconstructions: what an ignored speaker embedding gets
            "reconstruction_target_share": share(recon_for_goals, flat_goals),
        },
        "generation": speed,
    }
