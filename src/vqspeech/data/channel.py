"""What happens to synthesized speech between the vocal tract and the file: a speaker's vocal-tract
length, and the microphone, room and noise of one recording. All seeded, none moves a phone.

- `warp`: render, then resample by a factor a (about 0.88-1.12): every formant, f0 and the
  speaking rate scale by a, as a shorter (a > 1) or longer vocal tract and faster or slower
  speech would; phone times scale by exactly 1 / a.
- `Channel.draw` / `apply`, per utterance at `off`, `mild` or `strong`: a microphone-like EQ (a
  smooth random response, band-limited; a linear-phase FIR, applied centred so no sample moves),
  reverberation from a simulated shoebox room (pyroomacoustics' image-source model, from a
  seeded bank of rooms; the response is applied centred on its direct-path peak, so the direct
  sound arrives where it left), additive coloured noise at a drawn SNR, and a level change.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soxr
from scipy import signal

log = logging.getLogger(__name__)
SAMPLE_RATE = 16000
LEVELS = ("off", "mild", "strong")


def warp(samples: np.ndarray, sample_rate: int, factor: float) -> np.ndarray:
    """16 kHz samples of `samples` played `factor` times faster: resampled to 16000 / factor."""
    return soxr.resample(samples, sample_rate, SAMPLE_RATE / factor, quality="HQ").astype(
        np.float32
    )


@dataclass(frozen=True)
class Level:
    """What one channel level draws from (uniform within each range)."""

    eq_db: float  # largest boost or cut of the smooth response at any octave point
    highpass_hz: tuple[float, float]
    lowpass_hz: tuple[float, float]
    reverb_share: float  # share of utterances with reverberation
    rt60_s: tuple[float, float]
    snr_db: tuple[float, float]
    gain_db: tuple[float, float]


LEVEL_RANGES: dict[str, Level] = {
    "mild": Level(4.0, (40, 120), (6500, 7800), 0.5, (0.15, 0.4), (20, 35), (-6, 0)),
    "strong": Level(9.0, (80, 300), (3600, 7500), 0.9, (0.3, 0.8), (5, 20), (-12, 0)),
}
ROOMS = 24  # simulated rooms per level (drawn once per corpus seed; an utterance picks one)
_OCTAVES = np.array([0.0, 125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, SAMPLE_RATE / 2])


@dataclass(frozen=True)
class Channel:
    """One utterance's recording chain (see the module docstring)."""

    eq_gains_db: tuple[float, ...]  # at _OCTAVES (0 Hz, octaves from 125 Hz, Nyquist)
    highpass_hz: float
    lowpass_hz: float
    room: int | None  # index into the room bank; None = no reverberation
    snr_db: float
    noise_slope: float  # noise power ~ 1 / f^slope (0 white, 1 pink, 2 brown)
    gain_db: float

    @staticmethod
    def draw(level: str, rng: np.random.Generator) -> Channel | None:
        """A seeded channel at `level`; None at `off`."""
        if level == "off":
            return None
        r = LEVEL_RANGES[level]
        gains = tuple(float(g) for g in rng.uniform(-r.eq_db, r.eq_db, len(_OCTAVES)))
        reverb = rng.random() < r.reverb_share
        room = int(rng.integers(ROOMS))
        return Channel(
            gains,
            float(rng.uniform(*r.highpass_hz)),
            float(rng.uniform(*r.lowpass_hz)),
            room if reverb else None,
            float(rng.uniform(*r.snr_db)),
            float(rng.uniform(0.0, 2.0)),
            float(rng.uniform(*r.gain_db)),
        )


def room_bank(level: str, seed: int) -> list[np.ndarray]:
    """ROOMS room impulse responses at `level` (pyroomacoustics shoebox rooms, seeded); each is
    returned rolled so that its direct-path peak is at index 0 of a centred convolution."""
    import pyroomacoustics as pra

    # pyroomacoustics sums the image sources' responses in float32 in one block per thread, so
    # the rounding, and every byte of the corpus, would depend on the machine's core count
    threads = pra.constants.get("num_threads")
    pra.constants.set("num_threads", 1)
    try:
        r = LEVEL_RANGES[level]
        rng = np.random.default_rng([seed, 7_000])
        bank = []
        for _ in range(ROOMS):
            dim = rng.uniform([3.0, 3.0, 2.4], [9.0, 7.0, 3.6])
            rt60 = float(rng.uniform(*r.rt60_s))
            absorption, max_order = pra.inverse_sabine(rt60, dim)
            room = pra.ShoeBox(
                dim,
                fs=SAMPLE_RATE,
                materials=pra.Material(absorption),
                max_order=min(max_order, 60),
            )
            source = rng.uniform([0.5, 0.5, 1.2], dim - [0.5, 0.5, 1.0])
            mic = rng.uniform([0.5, 0.5, 0.8], dim - [0.5, 0.5, 1.0])
            room.add_source(source.tolist())
            room.add_microphone(mic.tolist())
            room.compute_rir()
            rir = np.asarray(room.rir[0][0], dtype=np.float64)
            peak = int(np.argmax(np.abs(rir)))
            bank.append(rir / np.abs(rir[peak]))
            bank[-1] = _centre(bank[-1], peak)
        return bank
    finally:
        pra.constants.set("num_threads", threads)


def _centre(kernel: np.ndarray, at: int) -> np.ndarray:
    """`kernel` padded so that index `at` is its centre: a "same" convolution moves nothing."""
    before, after = at, len(kernel) - 1 - at
    pad = max(before, after)
    return np.pad(kernel, (pad - before, pad - after))


def eq_filter(c: Channel, taps: int = 511) -> np.ndarray:
    """The linear-phase FIR of a channel's EQ and band limits (odd length, centred)."""
    gains = 10 ** (np.asarray(c.eq_gains_db) / 20)
    fir = signal.firwin2(taps, _OCTAVES, gains, fs=SAMPLE_RATE)
    band = signal.firwin(taps, [c.highpass_hz, c.lowpass_hz], pass_zero=False, fs=SAMPLE_RATE)
    return np.convolve(fir, band, mode="same")


def coloured_noise(n: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1 / f^slope, unit variance."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum *= np.maximum(f, 20.0) ** (-slope / 2)
    noise = np.fft.irfft(spectrum, n)
    return noise / (noise.std() + 1e-12)


def apply(
    samples: np.ndarray, c: Channel | None, rooms: Sequence[np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """`samples` (16 kHz float) through channel `c`, the same length, no sample moved; peak at
    most 0.99. `rng` draws the noise itself."""
    y = samples.astype(np.float64)
    if c is not None:
        y = signal.fftconvolve(y, eq_filter(c), mode="same")
        if c.room is not None:
            y = signal.fftconvolve(y, rooms[c.room], mode="same")
        power = float(np.mean(y**2))
        noise = coloured_noise(len(y), c.noise_slope, rng)
        y = y + noise * np.sqrt(power / 10 ** (c.snr_db / 10))
        y *= 10 ** (c.gain_db / 20)
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32)
