"""Objective checks of synthesized speech (groundwork for issue 7's synthesize stage).

- `mel_cepstra`: c1..c24 of a 80-band log-mel spectrum (librosa MFCC, 25 ms / 10 ms at 16 kHz);
  c0 (energy) is left out, as usual for mel-cepstral distortion;
- `mcd`: mel-cepstral distortion in dB, (10 / ln 10) sqrt(2 sum_d (c_d - c'_d)^2) averaged over
  frames. A reconstruction is decoded from the original's own latents, so its frames line up with
  the original's one to one; sequences whose lengths differ by more than `max_offset` frames are
  an error rather than silently truncated;
- `SpeakerClassifier`: logistic regression on per-utterance MFCC mean and std, fitted on the
  training speakers; for voice conversion, the share of converted utterances it assigns to the
  target speaker.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def mel_cepstra(audio: np.ndarray, sr: int = 16000, n: int = 24) -> np.ndarray:
    """[T, n] mel-cepstral coefficients c1..cn (no c0), 25 ms windows every 10 ms."""
    import librosa

    c = librosa.feature.mfcc(y=np.asarray(audio, dtype=np.float32), sr=sr, n_mfcc=n + 1,
                             n_fft=int(0.025 * sr), hop_length=int(0.01 * sr), n_mels=80,
                             center=False)  # fmt: skip
    return c[1:].T


def mcd(reference: np.ndarray, test: np.ndarray, max_offset: int = 2) -> float:
    """Mean mel-cepstral distortion (dB) between frame-aligned cepstra [T, D] and [T', D]."""
    if reference.shape[1] != test.shape[1]:
        raise ValueError(f"cepstra of {reference.shape[1]} and {test.shape[1]} dimensions")
    if abs(len(reference) - len(test)) > max_offset:
        raise ValueError(f"{len(reference)} and {len(test)} frames: not aligned frame by frame")
    n = min(len(reference), len(test))
    diff = reference[:n] - test[:n]
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
