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


def logmel_frames(data: SplitData, preemphasis: float, n_mels: int = TARGET_MELS) -> np.ndarray:
    """float64 [N, n_mels]: the log mel energies of every frame of `data`, utterance by
    utterance from its audio. Raises ValueError when the split has no audio or an utterance's
    audio does not give its number of frames."""
    from vqspeech.features.acoustic import FeatureConfig, extract

    if data.audio is None or data.audio_offsets is None:
        raise ValueError("the split was loaded without audio (features.audio must be true)")
    cfg = FeatureConfig("logmel", n_mels, preemphasis)
    out = np.empty((len(data.features), n_mels), dtype=np.float64)
    for u, uid in enumerate(data.utterance_ids):
        wave = data.audio[data.audio_offsets[u] : data.audio_offsets[u + 1]]
        y = extract(wave.astype(np.float32) / 32768.0, cfg)
        a, b = data.offsets[u], data.offsets[u + 1]
        if len(y) < b - a:
            raise ValueError(f"{uid}: its audio gives {len(y)} log-mel frames, not {b - a}")
        out[a:b] = y[: b - a]
    return out


def add_logmel_targets(
    train: SplitData, val: SplitData | None, preemphasis: float, n_mels: int = TARGET_MELS
) -> Normalizer:
    """Set `.targets` of both splits (float32, standardized by the train split's statistics)
    and return that normalizer."""
    x = logmel_frames(train, preemphasis, n_mels)
    norm = Normalizer(x.mean(axis=0), np.maximum(x.std(axis=0), STD_FLOOR), len(x))
    train.targets = norm(x)
    if val is not None:
        val.targets = norm(logmel_frames(val, preemphasis, n_mels))
    log.info("decoder target: %d-band log mel energies of %d train frames", n_mels, len(x))
    return norm
