"""How hard a corpus is before any model is trained: the two input-only baselines of evaluate.

`measure` scores the held-out split exactly as the evaluate stage scores its `kmeans_mfcc` and
`mfcc` systems (the same 20 ms frames, labels, k-means fit and ABX), without codes: k-means
PNMI at K, and ABX of the paired MFCC frames within and across speakers. Published values for
LibriSpeech are beside them in the README; `benchmarks/corpus.py` measures how each knob of the
built-in corpus moves them.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from vqspeech.data import manifest
from vqspeech.data.textgrid import read_phones
from vqspeech.evaluate import abx, baselines
from vqspeech.evaluate.align import latent_labels
from vqspeech.features import shards
from vqspeech.features.stats import Normalizer


def frames_of(
    features_dir: str | os.PathLike[str], manifest_path: str | os.PathLike[str],
    norm: Normalizer, split: str,
) -> tuple[pd.DataFrame, np.ndarray]:  # fmt: skip
    """(utterance_id, speaker, frame, phone) and the paired MFCC vector of every 20 ms frame of
    `split`, labelled as align labels latents (the phone at the centre of the two frames)."""
    grids = manifest.by_id(manifest.read(manifest_path), "textgrid")
    rows, vectors = [], []
    for u in shards.iter_utterances(features_dir, split):
        x = baselines.pair_frames(norm(u.features, np.float64))
        labels = latent_labels(read_phones(grids[u.utterance_id]), len(x), u.start_s)
        rows.append(pd.DataFrame({"utterance_id": u.utterance_id, "speaker": u.speaker,
                                  "frame": np.arange(len(x)), "phone": labels}))  # fmt: skip
        vectors.append(x)
    if not rows:
        raise ValueError(f"{features_dir}: no {split} utterances")
    return pd.concat(rows, ignore_index=True), np.concatenate(vectors)


def measure(
    features_dir: str | os.PathLike[str], manifest_path: str | os.PathLike[str],
    stats_path: str | os.PathLike[str], *, split: str, k: int, seed: int, max_group: int,
    max_x_across: int,
) -> dict[str, float]:  # fmt: skip
    """k-means (K = k, fitted on train) PNMI and MFCC-frame ABX (%) on `split`."""
    norm = Normalizer.load(stats_path)
    km = baselines.fit_kmeans(shards.iter_utterances(features_dir, "train"), norm, k, seed)
    frames, mfcc = frames_of(features_dir, manifest_path, norm, split)
    scored = baselines.score_system(frames.assign(code=km.predict(mfcc).astype(np.int64)), 1)
    items = abx.cap_groups(abx.items_from_frames(frames), max_group, seed)
    result = abx.abx(items, abx.angular(mfcc), max_x_across, seed).as_percent()
    return {
        "kmeans_mfcc_pnmi": round(float(scored["all"]["pnmi"]), 4),
        "mfcc_abx_within": round(float(result["within"]), 2),
        "mfcc_abx_across": round(float(result["across"]), 2),
        "speakers": int(frames["speaker"].nunique()),
        "frames": len(frames),
    }
