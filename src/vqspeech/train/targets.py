"""Decoder targets other than the input (`model.target`, docs/design.md "Decoder target").

`logmel`: the static log mel energies (TARGET_MELS bands) of the very frames the input
features describe, computed from the shards' int16 audio with the feature stage's own code
(vqspeech.features.acoustic, the same framing, window and pre-emphasis), then standardized with
the train split's mean and std. An MFCC39 encoder then learns units from which a decoder must
rebuild the spectral envelope, not the cepstra and deltas it was given. Needs librosa (the mel
filters); the default target, `input`, needs nothing beyond the train stage's packages.
"""

from __future__ import annotations

import logging

import numpy as np

from vqspeech.features.stats import STD_FLOOR, Normalizer
from vqspeech.train.crops import SplitData

log = logging.getLogger(__name__)
TARGET_MELS = 80  # as features.kind logmel's default
BLOCK = 1 << 16  # frames standardized at a time (float64 temporaries stay small)


def logmel_frames(data: SplitData, preemphasis: float, n_mels: int = TARGET_MELS) -> np.ndarray:
    """float32 [N, n_mels]: the log mel energies of every frame of `data`, utterance by
    utterance from its audio. Raises ValueError when the split has no audio or an utterance's
    audio does not give its number of frames, and ImportError without librosa."""
    from vqspeech.features.acoustic import FeatureConfig, extract

    if data.audio is None or data.audio_offsets is None:
        raise ValueError("the split was loaded without audio (features.audio must be true)")
    cfg = FeatureConfig("logmel", n_mels, preemphasis, normalize="none")  # energies as they are
    out = np.empty((len(data.features), n_mels), dtype=np.float32)
    for u, uid in enumerate(data.utterance_ids):
        wave = data.audio[data.audio_offsets[u] : data.audio_offsets[u + 1]]
        y = extract(wave.astype(np.float32) / 32768.0, cfg)
        a, b = data.offsets[u], data.offsets[u + 1]
        if len(y) != b - a:
            raise ValueError(f"{uid}: its audio gives {len(y)} log-mel frames, not {b - a}")
        out[a:b] = y
    return out


def add_logmel_targets(
    train: SplitData, val: SplitData | None, preemphasis: float, n_mels: int = TARGET_MELS
) -> Normalizer:
    """Set `.targets` of both splits (float32, standardized in place by the train split's
    statistics, accumulated in float64 a block at a time) and return that normalizer."""
    x = logmel_frames(train, preemphasis, n_mels)
    total, squares = np.zeros(n_mels), np.zeros(n_mels)
    for i in range(0, len(x), BLOCK):
        block = x[i : i + BLOCK].astype(np.float64)
        total += block.sum(axis=0)
        squares += (block**2).sum(axis=0)
    mean = total / len(x)
    std = np.sqrt(np.maximum(squares / len(x) - mean**2, 0.0))
    norm = Normalizer(mean, np.maximum(std, STD_FLOOR), len(x))
    for split, frames in ((train, x), (val, None)):
        if split is None:
            continue
        y = frames if frames is not None else logmel_frames(split, preemphasis, n_mels)
        for i in range(0, len(y), BLOCK):
            y[i : i + BLOCK] = norm(y[i : i + BLOCK])
        split.targets = y
    log.info("decoder target: %d-band log mel energies of %d train frames", n_mels, len(x))
    return norm
