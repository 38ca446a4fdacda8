"""Acoustic features and their frame labels.

Frames follow docs/design.md "Frames and time": frame i covers samples [i * hop, i * hop + win)
(no centre padding), i.e. [10 i, 10 i + 25) ms at the defaults, and is labelled with the phone
at its centre. Pre-emphasis is applied to the whole signal before framing.

- `mfcc39`: 13 cepstra (DCT-II of the log mel energies, c0 replaced by the log energy of the
  pre-emphasized frame) + delta + delta-delta.
- `logmel`: log mel energies.
- `fbank`: log mel energies + delta + delta-delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import librosa
import numpy as np
import scipy.fft

from vqspeech.data.textgrid import PhoneAlignment
from vqspeech.params import FeaturesParams

FeatureKind = Literal["mfcc39", "logmel", "fbank"]
DEFAULT_MELS: dict[str, int] = {"mfcc39": 26, "logmel": 80, "fbank": 40}  # features.n_mels: null
LOG_FLOOR = 1e-10


@dataclass(frozen=True)
class FeatureConfig:
    """What `extract` computes. The first four are `features.*` (`from_params`: `n_mels` null
    resolved to the kind's own, `DEFAULT_MELS`); the rest is fixed by the design: 25 ms windows
    every 10 ms of 16 kHz audio, 512-point FFT, 13 cepstra, HTK's delta window."""

    kind: FeatureKind
    n_mels: int
    preemphasis: float
    normalize: Literal["none", "utterance"]
    sample_rate: int = 16000
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_fft: int = 512
    n_ceps: int = 13
    delta_width: int = 5  # HTK's regression window of +-2 frames

    @classmethod
    def from_params(cls, f: FeaturesParams) -> FeatureConfig:
        return cls(f.kind, f.n_mels or DEFAULT_MELS[f.kind], f.preemphasis, f.normalize)

    @property
    def dim(self) -> int:
        if self.kind == "mfcc39":
            return 3 * self.n_ceps
        if self.kind == "fbank":
            return 3 * self.n_mels
        return self.n_mels

    @property
    def hop_s(self) -> float:
        return self.hop_length / self.sample_rate

    @property
    def win_s(self) -> float:
        return self.win_length / self.sample_rate

    @cached_property
    def mel_basis(self) -> np.ndarray:
        """HTK-style triangles on the power spectrum, unnormalized: [n_mels, n_fft // 2 + 1]."""
        return librosa.filters.mel(
            sr=self.sample_rate, n_fft=self.n_fft, n_mels=self.n_mels, htk=True, norm=None
        )

    @cached_property
    def window(self) -> np.ndarray:
        return np.hamming(self.win_length)  # symmetric, as HTK and Kaldi use


def n_frames(n_samples: int, win_length: int = 400, hop_length: int = 160) -> int:
    """Number of whole frames: 1 + (n - win) // hop, or 0 when shorter than one window."""
    return 0 if n_samples < win_length else 1 + (n_samples - win_length) // hop_length


def preemphasize(y: np.ndarray, coef: float) -> np.ndarray:
    """y[n] - coef * y[n-1], with y[-1] taken as 0."""
    out = y.astype(np.float64, copy=True)
    out[1:] -= coef * y[:-1]
    return out


def extract(y: np.ndarray, cfg: FeatureConfig, mel_basis: np.ndarray | None = None) -> np.ndarray:
    """Features of a mono signal at `cfg.sample_rate`: float32 [n_frames, cfg.dim]; `mel_basis`
    replaces `cfg.mel_basis` (a warped one: vqspeech.train.views).

    Raises ValueError when the signal is shorter than one window.
    """
    if n_frames(len(y), cfg.win_length, cfg.hop_length) == 0:
        raise ValueError(f"{len(y)} samples is shorter than one {cfg.win_length}-sample window")
    frames = librosa.util.frame(
        preemphasize(y, cfg.preemphasis),
        frame_length=cfg.win_length,
        hop_length=cfg.hop_length,
        axis=0,
    )
    power = np.abs(np.fft.rfft(frames * cfg.window, n=cfg.n_fft, axis=1)) ** 2
    basis = cfg.mel_basis if mel_basis is None else mel_basis
    log_mel = np.log(np.maximum(power @ basis.T, LOG_FLOOR))
    if cfg.kind == "logmel":
        out = log_mel
    else:
        if cfg.kind == "fbank":
            static = log_mel
        else:
            static = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, : cfg.n_ceps]
            static[:, 0] = np.log(np.maximum(np.sum(frames**2, axis=1), LOG_FLOOR))
        out = with_deltas(static, cfg.delta_width)
    if cfg.normalize == "utterance":
        out = cmvn(out)
    return out.astype(np.float32)


CMVN_STD_FLOOR = 1e-5


def cmvn(x: np.ndarray) -> np.ndarray:
    """Per-utterance mean and variance normalization: each dimension of [T, D] to mean 0 and
    standard deviation 1 over the utterance's frames (the std floored at CMVN_STD_FLOOR)."""
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), CMVN_STD_FLOOR)


def with_deltas(static: np.ndarray, width: int) -> np.ndarray:
    """[T, D] -> [T, 3D]: static, delta and delta-delta, HTK/Kaldi style.

    Delta is the regression over +-(width // 2) frames, edges repeating the first/last frame;
    delta-delta is the same regression applied to the deltas.
    """
    d1 = librosa.feature.delta(static, width=width, order=1, axis=0, mode="nearest")
    d2 = librosa.feature.delta(d1, width=width, order=1, axis=0, mode="nearest")
    return np.concatenate([static, d1, d2], axis=1)


def frame_labels(alignment: PhoneAlignment, count: int, hop_s: float, win_s: float) -> list[str]:
    """The phone at the centre of each of `count` frames.

    Raises ValueError when a frame centre lies beyond the alignment's last interval.
    """
    ends = np.array([iv.end for iv in alignment.intervals])
    centres = np.arange(count) * hop_s + win_s / 2
    idx = np.searchsorted(ends, centres, side="right")
    if count and idx[-1] >= len(ends):
        raise ValueError(
            f"alignment ends at {ends[-1]:.3f} s, before the centre of frame {count - 1} "
            f"({centres[-1]:.3f} s)"
        )
    labels = [iv.label for iv in alignment.intervals]
    return [labels[i] for i in idx]
