"""How hard a corpus is before any model is trained: the two input-only baselines of evaluate.

`measure` scores the held-out split exactly as the evaluate stage scores its `kmeans_mfcc` and
`mfcc` systems (the same 20 ms frames, labels, k-means fit and ABX), without codes: k-means
PNMI at K, and ABX of the MFCC frames within and across speakers, at 10 ms and paired to 20 ms.
Published values for LibriSpeech are beside them in docs/corpus.md; `benchmarks/corpus.py` measures
how each knob of the built-in corpus moves them.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from vqspeech.data import manifest
from vqspeech.data.textgrid import read_phones
from vqspeech.evaluate import abx, kmeans, scoring
from vqspeech.evaluate.codes import layout_of
from vqspeech.evaluate.encode import intervals_of, latent_labels
from vqspeech.evaluate.heldout import pair_frames
from vqspeech.features import shards
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer


def frames_of(
    features_dir: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    split: str,
) -> tuple[list[Utterance], pd.DataFrame, pd.DataFrame]:
    """The utterances of `split` (by id), the (utterance_id, speaker, frame, phone) table of
    their 20 ms frames labelled as align labels latents, and their phone intervals."""
    grids = manifest.by_id(manifest.read(manifest_path), "textgrid")
    utts = sorted(shards.iter_utterances(features_dir, split), key=lambda u: u.utterance_id)
    if not utts:
        raise ValueError(f"{features_dir}: no {split} utterances")
    rows, intervals = [], []
    for u in utts:
        alignment = read_phones(grids[u.utterance_id])
        n = len(u.features) // 2
        rows.append(
            pd.DataFrame(
                {
                    "utterance_id": u.utterance_id,
                    "speaker": u.speaker,
                    "frame": np.arange(n),
                    "phone": latent_labels(alignment, n, u.start_s),
                }
            )
        )
        intervals.append(intervals_of(alignment, u.utterance_id, u.speaker, u.start_s))
    return utts, pd.concat(rows, ignore_index=True), pd.concat(intervals, ignore_index=True)


def measure(
    features_dir: str | os.PathLike[str],
    manifest_path: str | os.PathLike[str],
    stats_path: str | os.PathLike[str],
    *,
    split: str,
    k: int,
    seed: int,
    max_group: int,
    max_x_across: int,
) -> dict[str, float]:
    """k-means (K = k, fitted on train) PNMI and MFCC-frame ABX (%) on `split`, at 10 ms (as
    libri-light's published MFCC numbers) and paired to 20 ms (as k-means sees them)."""
    norm = Normalizer.load(stats_path)
    km = kmeans.fit_kmeans(shards.iter_utterances(features_dir, "train"), norm, k, seed)
    utts, frames, intervals = frames_of(features_dir, manifest_path, split)
    paired = np.concatenate([pair_frames(norm(u.features, np.float64)) for u in utts])
    rate = scoring.symbol_rate(len(frames), utts)
    scored = scoring.score_system(frames.assign(code=km.predict(paired).astype(np.int64)), 1, rate)
    keys, native = kmeans.native_features(utts, norm)
    out = {"kmeans_mfcc_pnmi": round(float(scored["all"]["pnmi"]), 4)}
    for suffix, table, vectors, stride in (("", keys, native, 1), ("_20ms", frames, paired, 2)):
        layout = layout_of(table)
        items = abx.capped_items(intervals, layout.ids, layout.counts, stride, max_group, seed)
        result = abx.abx(items, abx.angular(vectors), max_x_across, seed).as_percent()
        out[f"mfcc_abx_within{suffix}"] = round(float(result["within"]), 2)
        out[f"mfcc_abx_across{suffix}"] = round(float(result["across"]), 2)
    return {**out, "speakers": len({u.speaker for u in utts}), "frames": len(frames)}
