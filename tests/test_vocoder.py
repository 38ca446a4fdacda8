import numpy as np
import pytest

from vqspeech.synthesis import vocoder

SR = 16000


def tone(hz: float, seconds: float = 1.0, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (level * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def peak_hz(y: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.fft.rfftfreq(len(y), 1 / SR)[np.argmax(spectrum)])


@pytest.mark.parametrize(("hz", "inverse"), [(300.0, "pinv"), (1000.0, "nnls"), (2500.0, "mu")])
def test_griffin_lim_of_a_pure_tone_keeps_its_frequency_and_level(hz: float, inverse: str):
    frames = vocoder.log_mel(tone(hz), preemphasis=0.97)
    y = vocoder.griffin_lim(frames, preemphasis=0.97, iterations=32, seed=0, inverse=inverse)
    assert y.dtype == np.float32 and len(y) == (len(frames) - 1) * 160 + 400
    # within one mel band of the tone (80 HTK bands: ~30 Hz wide at 300 Hz, ~150 Hz at 2.5 kHz)
    band = (
        700
        * (
            10 ** ((2595 * np.log10(1 + hz / 700) + 2595 * np.log10(1 + 8000 / 700) / 81) / 2595)
            - 1
        )
        - hz
    )
    assert abs(peak_hz(y[2000:-2000]) - hz) < band
    # the resynthesis analysed again gives the same log-mel where the tone is (the vocoder's
    # only losses are the mel inverse and the phase estimate); the level is kept within 1.5 dB
    # (nnls) or 2.5 dB (the clipped pseudo-inverse spreads a tone's power over its band)
    again = vocoder.log_mel(y, preemphasis=0.97)
    loud = frames[5:-5].mean(axis=0) > frames[5:-5].mean() + 5
    gap_db = 10 / np.log(10) * np.abs(again[5:-5, loud] - frames[5:-5, loud]).mean()
    assert gap_db < (2.5 if inverse == "pinv" else 1.5)


def test_griffin_lim_is_seeded_and_names_bad_input():
    frames = vocoder.log_mel(tone(440.0, 0.3), preemphasis=0.97)
    a = vocoder.griffin_lim(frames, 0.97, iterations=4, seed=1)
    assert np.array_equal(a, vocoder.griffin_lim(frames, 0.97, iterations=4, seed=1))
    assert not np.array_equal(a, vocoder.griffin_lim(frames, 0.97, iterations=4, seed=2))
    with pytest.raises(ValueError, match="pinv, nnls or mu, not 'svd'"):
        vocoder.griffin_lim(frames, 0.97, iterations=4, seed=0, inverse="svd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least 1 iteration"):
        vocoder.griffin_lim(frames, 0.97, iterations=0, seed=0)
    with pytest.raises(ValueError, match=r"must be \[T > 0, bands\], not \[0, 80\]"):
        vocoder.griffin_lim(frames[:0], 0.97, iterations=4, seed=0)


def test_log_mel_reads_int16_as_float():
    y = tone(440.0, 0.3)
    pcm = np.round(y * 32767).astype(np.int16)
    a, b = vocoder.log_mel(pcm, 0.97), vocoder.log_mel(y, 0.97)
    loud = b > b.max() - 10  # within 43 dB of the tone: the 16-bit rounding is far below
    np.testing.assert_allclose(a[loud], b[loud], atol=1e-2)


def test_griffin_lim_keeps_onsets_in_place():
    """Noise bursts come back where they were: the resynthesis re-analysed matches the input's
    log-mel best unshifted (a window misplaced by librosa's centring would move them 56
    samples)."""
    rng = np.random.default_rng(0)
    y = np.zeros(SR, np.float32)
    for start in (1600, 5000, 9000, 12500):
        y[start : start + 800] = rng.normal(0, 0.2, 800)
    frames = vocoder.log_mel(y, 0.97)
    out = vocoder.griffin_lim(frames, 0.97, iterations=32, seed=0, inverse="mu")

    def gap(shift: int) -> float:
        moved = np.roll(out, shift)
        return float(np.abs(vocoder.log_mel(moved, 0.97) - frames)[5:-5].mean())

    assert gap(0) < min(gap(56), gap(-56), gap(20), gap(-20))
