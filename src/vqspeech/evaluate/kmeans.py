"""The k-means baselines of the evaluate stage: fitted on train frames (MFCC paired to 20 ms, or
the model's latents), at the learned codes' K or at their perplexity (`matched_kmeans`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
from sklearn.cluster import MiniBatchKMeans

from vqspeech.evaluate.heldout import pair_frames
from vqspeech.evaluate.metrics import (
    entropy_bits,
)
from vqspeech.evaluate.sampling import BottomK
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer


def train_frames(
    train: Iterable[Utterance], norm: Normalizer, seed: int, max_frames: int = 200_000
) -> np.ndarray:
    """What the MFCC k-means is fitted on: normalized, paired train frames (a seeded sample of
    at most max_frames, `sampling.BottomK`: memory bounded by the sample, not the split)."""
    sample = BottomK(max_frames, seed)
    for u in train:
        sample.add(u.utterance_id, pair_frames(norm(u.features, np.float64)))
    return sample.result()


def fit_kmeans(
    train: Iterable[Utterance], norm: Normalizer, k: int, seed: int, max_frames: int = 200_000
) -> MiniBatchKMeans:
    """k-means on `train_frames`."""
    return kmeans(train_frames(train, norm, seed, max_frames), k, seed)


def code_perplexity(codes: np.ndarray) -> float:
    """2 ** (entropy in bits) of the codes' distribution: `code_perplexity` of the metrics."""
    return 2.0 ** entropy_bits(np.unique(np.asarray(codes), return_counts=True)[1])


def matched_kmeans(
    km: MiniBatchKMeans,
    train: np.ndarray,
    predict: Callable[[MiniBatchKMeans], np.ndarray],
    target: float,
    seed: int,
    refits: int = 2,
) -> tuple[MiniBatchKMeans, dict[int, float], np.ndarray]:
    """k-means on the same train frames at the K' whose codes' perplexity on the held-out frames
    (`predict(fit)`: a fit's codes of them) comes closest to `target` (the learned codes'): the
    comparison at equal used codes. Starting from `km` (K codes), K' is scaled by
    target / perplexity (which grows about linearly with K') up to `refits` times, stopping
    when it repeats. Returns the closest fit, every (K', perplexity) tried and its codes."""
    fits, codes = {km.n_clusters: km}, {km.n_clusters: predict(km)}
    tried = {km.n_clusters: code_perplexity(codes[km.n_clusters])}
    k = km.n_clusters
    for _ in range(refits):
        k = max(2, round(k * target / tried[k]))
        if k in tried:
            break
        fits[k] = kmeans(train, k, seed)
        codes[k] = predict(fits[k])
        tried[k] = code_perplexity(codes[k])
    best = min(tried, key=lambda c: (abs(tried[c] - target), c))
    return fits[best], tried, codes[best]


def kmeans(x: np.ndarray, k: int, seed: int) -> MiniBatchKMeans:
    """The one k-means of the baselines (MiniBatchKMeans, 3 inits, batches of 4096, seeded)."""
    return MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096).fit(x)


def paired_features(utts: Iterable[Utterance], norm: Normalizer) -> tuple[pd.DataFrame, np.ndarray]:
    """(utterance_id, frame) and the normalized, paired MFCC vector of every 20 ms frame."""
    keys, vectors = [], []
    for u in utts:
        x = pair_frames(norm(u.features, np.float64))
        keys.append(pd.DataFrame({"utterance_id": u.utterance_id, "frame": np.arange(len(x))}))
        vectors.append(x)
    if not keys:
        raise ValueError("no utterances")
    return pd.concat(keys, ignore_index=True), np.concatenate(vectors)


def native_features(utts: Iterable[Utterance], norm: Normalizer) -> tuple[pd.DataFrame, np.ndarray]:
    """(utterance_id, frame) sorted, and the normalized 10 ms feature vector of every frame."""
    ordered = sorted(utts, key=lambda u: u.utterance_id)
    if not ordered:
        raise ValueError("no utterances")
    keys = pd.concat(
        [
            pd.DataFrame({"utterance_id": u.utterance_id, "frame": np.arange(len(u.features))})
            for u in ordered
        ],
        ignore_index=True,
    )
    return keys, np.concatenate([norm(u.features, np.float64) for u in ordered])
