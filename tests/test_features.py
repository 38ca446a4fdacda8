"""Features against an independent, frame-by-frame computation written from the definitions."""

from __future__ import annotations

import numpy as np
import pytest

from vqspeech.data.textgrid import Interval, PhoneAlignment
from vqspeech.features.acoustic import cmvn, extract, frame_labels, n_frames

from .conftest import features

SR = 16000


def tone(freq: float, seconds: float = 0.5, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)


@pytest.mark.parametrize(
    ("n", "frames"), [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16000, 98), (16160, 99)]
)
def test_frame_count_formula(n: int, frames: int):
    assert n_frames(n) == frames
    if frames:
        assert len(extract(np.zeros(n) + 0.01, features())) == frames


def test_utterance_normalization_is_cmvn_of_the_plain_features():
    y = np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.1
    plain = extract(y, features())
    normed = extract(y, features(normalize="utterance"))
    np.testing.assert_allclose(normed.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(normed.std(0), 1, atol=1e-4)
    np.testing.assert_allclose(normed, cmvn(plain), atol=1e-4)
    assert cmvn(np.ones((5, 2))).tolist() == [[0.0, 0.0]] * 5  # constant: no division by 0


def test_shorter_than_a_window_is_an_error():
    with pytest.raises(ValueError, match="shorter than one 400-sample window"):
        extract(np.ones(399), features())


# --- the independent reference ---------------------------------------------------------------


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10 ** (np.asarray(m) / 2595.0) - 1.0)


def reference_filterbank(n_mels: int, n_fft: int = 512, sr: int = SR) -> np.ndarray:
    """Triangles with corners at n_mels + 2 points equally spaced on the HTK mel scale."""
    corners = mel_to_hz(np.linspace(0, hz_to_mel(sr / 2), n_mels + 2))
    freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
    bank = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, mid, hi = corners[m : m + 3]
        for k, f in enumerate(freqs):
            if lo < f < hi:
                bank[m, k] = (f - lo) / (mid - lo) if f <= mid else (hi - f) / (hi - mid)
    return bank


def reference_delta(c: np.ndarray) -> np.ndarray:
    """HTK regression, N = 2, edges replicated."""
    T = len(c)
    out = np.zeros_like(c)
    for t in range(T):
        for n in (1, 2):
            out[t] += n * (c[min(t + n, T - 1)] - c[max(t - n, 0)])
    return out / 10.0


def reference_mfcc39(y: np.ndarray, coef: float = 0.97) -> np.ndarray:
    pre = np.array([y[0]] + [y[n] - coef * y[n - 1] for n in range(1, len(y))])
    bank = reference_filterbank(26)
    hamming = np.array([0.54 - 0.46 * np.cos(2 * np.pi * n / 399) for n in range(400)])
    N = 26
    dct = np.array(
        [[np.cos(np.pi * k * (n + 0.5) / N) for n in range(N)] for k in range(13)]
    ) * np.sqrt(2.0 / N)
    dct[0] /= np.sqrt(2.0)
    rows = []
    for i in range(1 + (len(y) - 400) // 160):
        frame = pre[i * 160 : i * 160 + 400]
        spectrum = np.abs(np.fft.rfft(frame * hamming, 512)) ** 2
        ceps = dct @ np.log(np.maximum(bank @ spectrum, 1e-10))
        ceps[0] = np.log(np.sum(frame**2))
        rows.append(ceps)
    c = np.array(rows)
    d = reference_delta(c)
    return np.concatenate([c, d, reference_delta(d)], axis=1)


def test_mfcc39_matches_independent_computation():
    rng = np.random.default_rng(0)
    y = tone(440, 0.3) + tone(1830, 0.3, 0.2) + 0.01 * rng.standard_normal(int(0.3 * SR))
    ours = extract(y, features())
    ref = reference_mfcc39(y)
    assert ours.shape == ref.shape == (28, 39)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)


def test_tone_peaks_in_its_mel_band():
    cfg = features(kind="logmel", n_mels=26)
    for freq in (300.0, 1000.0, 3000.0):
        band = int(np.argmax(extract(tone(freq), cfg).mean(axis=0)))
        centres = mel_to_hz(np.linspace(0, hz_to_mel(SR / 2), 28))[1:-1]
        assert band == int(np.argmin(np.abs(centres - freq)))


def test_preemphasis_is_really_applied():
    """c0 of a 100 Hz tone is ln(N A^2 / 2 |1 - 0.97 e^-jw|^2): 6 nats below no pre-emphasis."""
    amp, w = 0.5, 2 * np.pi * 100 / SR
    gain = 1 - 2 * 0.97 * np.cos(w) + 0.97**2
    y = tone(100, 1.0, amp)
    c0 = extract(y, features())[5:-5, 0]
    c0_flat = extract(y, features(preemphasis=0.0))[5:-5, 0]
    np.testing.assert_allclose(c0_flat, np.log(400 * amp**2 / 2), atol=0.1)
    np.testing.assert_allclose(c0, np.log(400 * amp**2 / 2 * gain), atol=0.1)
    assert np.mean(c0_flat - c0) == pytest.approx(-np.log(gain), abs=0.05)  # about 6.0


def test_dimensions_of_each_kind():
    y = tone(500)
    assert extract(y, features(kind="logmel", n_mels=80)).shape[1] == 80
    assert extract(y, features(kind="fbank", n_mels=40)).shape[1] == 120
    fbank = extract(y, features(kind="fbank", n_mels=26))
    logmel = extract(y, features(kind="logmel", n_mels=26))
    np.testing.assert_allclose(fbank[:, :26], logmel)


# --- frame labels -------------------------------------------------------------------------------


def alignment(*spans: tuple[float, float, str]) -> PhoneAlignment:
    return PhoneAlignment(tuple(Interval(*s) for s in spans), spans[-1][1])


def test_labels_are_the_phone_at_each_frame_centre():
    # frame i is centred at 10 i + 12.5 ms
    a = alignment((0.0, 0.1, "sil"), (0.1, 0.3, "AH"), (0.3, 0.355, "T"), (0.355, 0.5, "sil"))
    labels = frame_labels(a, 48, 0.01, 0.025)
    # centres 12.5 .. 482.5 ms: sil 0-8, AH 9-28 (102.5-292.5), T 29-34 (302.5-352.5), sil 35-47
    expected = ["sil"] * 9 + ["AH"] * 20 + ["T"] * 6 + ["sil"] * 13
    assert labels == expected


def test_a_boundary_at_a_frame_centre_belongs_to_the_later_phone():
    a = alignment((0.0, 0.0225, "sil"), (0.0225, 0.1, "S"))
    assert frame_labels(a, 3, 0.01, 0.025) == ["sil", "S", "S"]


def test_labels_beyond_the_alignment_are_an_error():
    a = alignment((0.0, 0.05, "sil"))
    assert len(frame_labels(a, 4, 0.01, 0.025)) == 4  # last centre 42.5 ms
    with pytest.raises(ValueError, match="before the centre of frame 4"):
        frame_labels(a, 5, 0.01, 0.025)
