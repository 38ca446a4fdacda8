"""A vocoder that needs no training: Griffin-Lim from 80-band log-mel frames.

The log-mel frames are the features stage's own (`features.acoustic.extract`, kind logmel:
pre-emphasis, 25 ms Hamming windows every 10 ms, 512-point FFT, HTK mel triangles unnormalized,
natural log of the mel power, `center` off). `griffin_lim` inverts exactly that analysis: the mel
power is mapped back to a linear power spectrum through the same triangles (`inverse`: "nnls",
librosa's non-negative least squares of `mel_to_stft`, a second or more an utterance; or "pinv",
"mu", that pseudo-inverse refined by 50 multiplicative updates toward the same non-negative
least squares, a fraction of a second; or "pinv" alone, milliseconds, which is close on an
utterance's own log-mel
(its resynthesis re-analysed about 0.2 dB further from the input on speech) but garbles the
smoother spectra a decoder predicts: on the built-in corpus its unit resyntheses were nearly
unintelligible where NNLS's were not), its phase is estimated by fast Griffin-Lim
(`librosa.griffinlim`, momentum 0.99, seeded random start) with the same window and hop, and the
pre-emphasis is undone. The phase estimate is the vocoder's only loss: `ceiling` of an utterance
(Griffin-Lim of its own log-mel) is what any unit system's resynthesis through it can reach.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

from vqspeech.features.acoustic import FeatureConfig

N_MELS = 80


@functools.cache
def _pinv(n_mels: int, preemphasis: float) -> np.ndarray:
    return np.linalg.pinv(logmel_config(preemphasis, n_mels).mel_basis.astype(np.float64))


MU_ITERATIONS = 50


def _multiplicative_nnls(n_mels: int, preemphasis: float, power: np.ndarray) -> np.ndarray:
    """Non-negative S [bins, T] with B S close to the mel power [n_mels, T] (B the mel
    triangles): the clipped pseudo-inverse refined by Lee and Seung's multiplicative updates for
    a fixed basis, S <- S * (B^T M) / (B^T B S), which keep S >= 0 and never increase
    ||B S - M||. 50 of them reach librosa's NNLS residual in a tenth of its time or less."""
    import scipy.sparse

    # the triangles are sparse (about 500 of 80 x 257 entries): B^T (B S) through them is about
    # 6x faster than the dense Gram matrix B^T B, and the same to 1e-15
    basis = scipy.sparse.csr_array(logmel_config(preemphasis, n_mels).mel_basis.astype(np.float64))
    transposed = basis.T.tocsr()
    s = np.maximum(_pinv(n_mels, preemphasis) @ power, 1e-10)
    top = transposed @ power
    for _ in range(MU_ITERATIONS):
        s *= top / np.maximum(transposed @ (basis @ s), 1e-30)
    return s


def logmel_config(preemphasis: float, n_mels: int = N_MELS) -> FeatureConfig:
    """The analysis `log_mel` and `griffin_lim` share: features.kind logmel, unnormalized."""
    return FeatureConfig("logmel", n_mels, preemphasis, normalize="none")


def log_mel(audio: np.ndarray, preemphasis: float, n_mels: int = N_MELS) -> np.ndarray:
    """float32 [T, n_mels] natural-log mel power of float audio in [-1, 1] at 16 kHz (int16
    samples are scaled by 1 / 32768 first)."""
    from vqspeech.features.acoustic import extract

    y = np.asarray(audio)
    y = y.astype(np.float32) / 32768.0 if y.dtype == np.int16 else y.astype(np.float32)
    return extract(y, logmel_config(preemphasis, n_mels))


def griffin_lim(
    frames: np.ndarray,
    preemphasis: float,
    iterations: int,
    seed: int,
    inverse: Literal["pinv", "nnls", "mu"] = "nnls",
) -> np.ndarray:
    """float32 audio at 16 kHz, (T - 1) * 160 + 400 samples, from [T, n_mels] log-mel frames
    (`log_mel`'s); `iterations` of Griffin-Lim, its random phase start drawn from `seed`."""
    import librosa
    import scipy.signal

    if frames.ndim != 2 or len(frames) == 0:
        raise ValueError(f"log-mel frames must be [T > 0, bands], not {list(frames.shape)}")
    if iterations < 1:
        raise ValueError(f"Griffin-Lim needs at least 1 iteration, not {iterations}")
    cfg = logmel_config(preemphasis, frames.shape[1])
    power = np.exp(np.asarray(frames, dtype=np.float64)).T  # [n_mels, T]
    if inverse == "pinv":
        magnitude = np.sqrt(np.maximum(_pinv(frames.shape[1], preemphasis) @ power, 0.0))
    elif inverse == "mu":
        magnitude = np.sqrt(_multiplicative_nnls(frames.shape[1], preemphasis, power))
    elif inverse == "nnls":
        magnitude = librosa.feature.inverse.mel_to_stft(
            power, sr=cfg.sample_rate, n_fft=cfg.n_fft, power=2.0, htk=True, norm=None
        )
    else:
        raise ValueError(f"the mel inverse is pinv, nnls or mu, not {inverse!r}")
    # librosa centres the 400-sample window in each 512-sample frame, where the analysis puts
    # it at the frame's start: its signal is the analysed one with `lead` samples before it
    lead = (cfg.n_fft - cfg.win_length) // 2
    length = (len(frames) - 1) * cfg.hop_length + cfg.win_length
    y = librosa.griffinlim(
        magnitude,
        n_iter=iterations,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        n_fft=cfg.n_fft,
        window=cfg.window,
        center=False,
        length=length + 2 * lead,
        random_state=np.random.RandomState(seed),
    )[lead : lead + length]
    if preemphasis:
        y = scipy.signal.lfilter([1.0], [1.0, -preemphasis], y)
    return np.clip(y, -1.0, 1.0).astype(np.float32)
