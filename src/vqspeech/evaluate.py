"""Scoring the codes beside baselines on the same frames (DESIGN.md "Metrics").

Systems, all at the latents' 20 ms rate and joined on (utterance_id, frame):
- `vqvae`: the model's codes (data/codes);
- `kmeans_mfcc`: k-means with the same K on MFCC frames, fitted on train frames; a 20 ms frame is
  the mean of the two normalized 10 ms frames the latent stands for;
- `random`: uniform codes with the same K.
Each is scored on all frames and on speech frames (without sil/sp/spn).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.cluster import MiniBatchKMeans

from vqspeech.contingency import boundary_scores, mean_run_length, scores, speech_mask
from vqspeech.shards import Utterance


def pair_frames(features: np.ndarray) -> np.ndarray:
    """[T, D] -> [T // 2, D]: the mean of frames 2k and 2k+1 (a trailing odd frame is dropped)."""
    n = len(features) // 2
    return features[: 2 * n].reshape(n, 2, -1).mean(axis=1)


def fit_kmeans(
    train: Iterable[Utterance], mean: np.ndarray, std: np.ndarray, k: int, seed: int,
    max_frames: int = 200_000,
) -> MiniBatchKMeans:  # fmt: skip
    """k-means on normalized, paired train frames (a seeded subsample of at most max_frames)."""
    x = np.concatenate([pair_frames((u.features - mean) / std) for u in train])
    rng = np.random.default_rng(seed)
    if len(x) > max_frames:
        x = x[rng.choice(len(x), max_frames, replace=False)]
    return MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096).fit(x)


def paired_features(
    utts: Iterable[Utterance], mean: np.ndarray, std: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    """(utterance_id, frame) and the normalized, paired MFCC vector of every 20 ms frame."""
    keys, vectors = [], []
    for u in utts:
        x = pair_frames((u.features - mean) / std)
        keys.append(pd.DataFrame({"utterance_id": u.utterance_id, "frame": np.arange(len(x))}))
        vectors.append(x)
    if not keys:
        raise ValueError("no utterances")
    return pd.concat(keys, ignore_index=True), np.concatenate(vectors)


def baseline_codes(
    utts: Iterable[Utterance], km: MiniBatchKMeans, mean: np.ndarray, std: np.ndarray
) -> pd.DataFrame:
    """(utterance_id, frame, code) of the k-means baseline for every 20 ms frame."""
    keys, x = paired_features(utts, mean, std)
    return keys.assign(code=km.predict(x).astype(np.int64))


def score_system(frames: pd.DataFrame, tolerance: int = 1) -> dict[str, dict[str, float]]:
    """Metrics of one system; `frames` has utterance_id, frame, phone, code (one row a latent)."""
    frames = frames.sort_values(["utterance_id", "frame"])
    phones, codes = frames["phone"].to_numpy(), frames["code"].to_numpy()
    groups = [g for _, g in frames.groupby("utterance_id", sort=True)]
    phone_seqs = [g["phone"].to_numpy() for g in groups]
    code_seqs = [g["code"].to_numpy() for g in groups]
    all_frames = scores(phones, codes)
    all_frames.update(boundary_scores(phone_seqs, code_seqs, tolerance))
    all_frames["mean_run_length"] = mean_run_length(code_seqs)
    speech = speech_mask(phones)
    speech_frames = scores(phones[speech], codes[speech])
    speech_frames.update(boundary_scores(phone_seqs, code_seqs, tolerance, speech_only=True))
    return {"all": all_frames, "speech": speech_frames}


def rounded(d: dict, digits: int = 4) -> dict:
    """Floats of a nested dict rounded, for a readable metrics file; NaN (a score with nothing to
    score, e.g. across-speaker ABX with one speaker) becomes null, which JSON can hold."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = rounded(v, digits)
        elif isinstance(v, float):
            out[k] = None if math.isnan(v) else round(v, digits)
        else:
            out[k] = v
    return out
