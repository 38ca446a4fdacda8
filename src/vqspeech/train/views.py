"""Renditions ("views") of the train utterances, for invariance learned from them (`train.views`,
docs/design.md "Views").

A view of an utterance is its own audio through a freshly drawn recording channel
(`data.channel`: microphone EQ, band limits, a room, coloured noise, gain; at
`train.view_channel`) and a vocal-tract-length warp of its power spectrum (VTLP, Jaitly and Hinton
2013: bin k takes the power of bin k / alpha, alpha uniform in [1 - w, 1 + w], w =
`train.view_warp`), then the features stage's own framing and features (`features.acoustic`):
the same number of frames as the original, each frame the same 25 ms of speech, so every frame
label (and every crop) holds for all views. Features are standardized with the train split's
statistics, as the original's. Views are drawn from (seed, utterance id, view), so an
utterance's views do not depend on the others. Held-out splits are never augmented.

Needs librosa (the features) and pyroomacoustics (the rooms), as the built-in corpus does.
"""

from __future__ import annotations

import functools
import logging
import zlib

import numpy as np

from vqspeech.features.stats import Normalizer
from vqspeech.params import FeaturesParams
from vqspeech.train.crops import SplitData

log = logging.getLogger(__name__)


def warp_matrix(alpha: float, bins: int) -> np.ndarray:
    """[bins, bins]: power' = power @ M.T has at bin k the power at (fractional) bin k / alpha,
    linearly interpolated; bins that would read past the last one get nothing (alpha = 1: the
    identity)."""
    k = np.arange(bins)
    source = k / alpha
    low = np.minimum(np.floor(source).astype(int), bins - 2)
    frac = source - low
    m = np.zeros((bins, bins))
    inside = source <= bins - 1
    m[k[inside], low[inside]] = 1.0 - frac[inside]
    m[k[inside], low[inside] + 1] = frac[inside]
    return m


@functools.lru_cache(maxsize=2)
def _rooms(level: str, seed: int) -> tuple[np.ndarray, ...]:
    """The room bank of `level` (pyroomacoustics: seconds to simulate), once per process."""
    from vqspeech.data import channel

    return tuple(channel.room_bank(level, seed)) if level != "off" else ()


def warped_basis(mel_basis: np.ndarray, alpha: float) -> np.ndarray:
    """The mel filters that read the power spectrum warped by `alpha` (`warp_matrix`):
    `power @ warped.T` = `(power @ W.T) @ mel_basis.T`."""
    return mel_basis @ warp_matrix(alpha, mel_basis.shape[1])


def view_rng(seed: int, utterance_id: str, view: int) -> np.random.Generator:
    """The generator of one view of one utterance (independent of the split's other ones)."""
    return np.random.default_rng([seed, zlib.crc32(utterance_id.encode()), view, 5_000])


def add_views(
    data: SplitData,
    norm: Normalizer,
    features: FeaturesParams,
    count: int,
    level: str,
    warp: float,
    seed: int,
) -> None:
    """Set `data.views` to float32 [count, frames, D]: `count` views of every utterance of
    `data` (which needs its audio), standardized by `norm`. ValueError when an utterance's view
    does not give its number of frames."""
    from vqspeech.data import channel
    from vqspeech.features.acoustic import FeatureConfig, extract

    if data.audio is None or data.audio_offsets is None:
        raise ValueError("the split was loaded without audio (features.audio must be true)")
    cfg = FeatureConfig.from_params(features)
    rooms = _rooms(level, seed)
    views = np.empty((count, *data.features.shape), dtype=np.float32)
    for u, uid in enumerate(data.utterance_ids):
        wave = data.audio[data.audio_offsets[u] : data.audio_offsets[u + 1]]
        wave = wave.astype(np.float32) / 32768.0
        a, b = data.offsets[u], data.offsets[u + 1]
        for v in range(count):
            rng = view_rng(seed, uid, v)
            alpha = float(rng.uniform(1.0 - warp, 1.0 + warp))
            y = channel.apply(wave, channel.Channel.draw(level, rng), rooms, rng)
            x = extract(y, cfg, warped_basis(cfg.mel_basis, alpha))
            if len(x) != b - a:
                raise ValueError(f"{uid}: its view {v} gives {len(x)} frames, not {b - a}")
            views[v, a:b] = norm(x)
    data.views = views
    log.info(
        "views: %d of each of %d train utterances (channel %s, warp +-%g)",
        count,
        len(data.utterance_ids),
        level,
        warp,
    )
