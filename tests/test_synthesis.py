"""Mel-cepstral distortion and the speaker classifier on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vqspeech.synthesis import SpeakerClassifier, mcd, mel_cepstra


def test_mcd_known_values():
    rng = np.random.default_rng(0)
    c = rng.standard_normal((50, 24))
    assert mcd(c, c) == 0.0
    shifted = c.copy()
    shifted[:, 3] += 0.5  # one coefficient off by 0.5 in every frame
    assert mcd(c, shifted) == pytest.approx(10 / math.log(10) * math.sqrt(2) * 0.5)
    assert mcd(c, shifted[:49]) == pytest.approx(mcd(c[:49], shifted[:49]))  # 1 frame short: ok
    with pytest.raises(ValueError, match="not aligned"):
        mcd(c, c[:40])


def test_mel_cepstra_of_the_same_audio_are_identical_and_louder_is_c0_only():
    rng = np.random.default_rng(1)
    audio = rng.standard_normal(16000).astype(np.float32) * 0.1
    a = mel_cepstra(audio)
    assert a.shape == (1 + (16000 - 400) // 160, 24)
    # scaling the signal moves the log-mel spectrum by a constant: c0 only, which is left out
    assert mcd(a, mel_cepstra(audio * 2.0)) == pytest.approx(0.0, abs=1e-3)
    assert mcd(a, mel_cepstra(rng.standard_normal(16000).astype(np.float32))) > 0.1


def test_speaker_classifier_separates_speakers_and_scores_conversions():
    rng = np.random.default_rng(2)
    means = {"a": np.zeros(13), "b": np.full(13, 3.0)}

    def utt(s: str) -> np.ndarray:
        return means[s] + rng.standard_normal((80, 13))

    train = [(utt(s), s) for s in "ab" * 10]
    clf = SpeakerClassifier().fit([u for u, _ in train], [s for _, s in train])
    assert clf.predict([utt("a"), utt("b")]) == ["a", "b"]
    # conversions that reached their target, and ones that did not
    assert clf.target_share([utt("b"), utt("b"), utt("a"), utt("a")], ["b", "b", "b", "b"]) == 0.5
    with pytest.raises(ValueError, match="two speakers"):
        SpeakerClassifier().fit([utt("a")], ["a"])
