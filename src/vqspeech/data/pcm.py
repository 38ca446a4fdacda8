"""Float samples and 16-bit PCM: the one conversion every stage uses, and full-scale checks."""

from __future__ import annotations

import numpy as np


def to_int16(y: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1) -> int16 (x 32768, rounded, clipped). It inverts soundfile's
    int16 -> float32 read exactly, so 16-bit sources (flite, VCTK wav/flac) come back as they
    were; audio that may exceed full scale goes through `within_full_scale` first."""
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


def within_full_scale(y: np.ndarray) -> tuple[np.ndarray, float]:
    """(samples, peak): float audio whose peak |y| exceeds full scale (1.0, which a float file
    can) scaled down so that its peak is the largest int16 value, instead of clipped; other
    audio as it is. `peak` is the original peak: > 1 when the samples were scaled."""
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if peak <= 1.0:
        return y, peak
    return (y * np.float32(32767 / 32768 / peak)).astype(np.float32), peak
