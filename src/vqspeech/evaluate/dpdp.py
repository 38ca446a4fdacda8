"""Duration-penalized dynamic programming (DPDP) re-segmentation of a code sequence (Kamper 2022,
"Word segmentation on discovered phone units with dynamic programming and self-supervised
scoring"; Kamper & van Niekerk 2021 for VQ phone segmentation).

Given the frame vectors z_t of an utterance and the K code vectors c_k of a system, choose
segments [s, e) (at most `max_len` frames each) and one code per segment to minimize

    sum_t ||z_t - c_code(t)||^2 + penalty * (number of segments),

by dynamic programming over segment ends. With penalty 0 every frame keeps its nearest code (the
raw codes); a larger penalty trades quantization error for fewer, longer segments. Kamper's
`neg_chorowski` duration term, -dur_weight * (length - 1) per segment, is this per-segment
penalty up to a constant.

Kamper tunes the weight per model; a penalty in units of each system's quantization error does
not make systems comparable (measured: one relative penalty left the VQ-VAE's segments at 2.6
latents and k-means on MFCC's at 11.7). So `calibrate` finds, per system and without labels, the
penalty whose segments have a given mean length (`eval.dpdp.mean_latents`, 4 latents = 80 ms, a
typical phone of read English), by bisection on a seeded subset of the utterances; every system
is then compared at the same number of segments.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

import numpy as np

from vqspeech.params import DPDPParams


def squared_distances(vectors: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """||z_t - c_k||^2 [T, K], in float64."""
    z, c = np.asarray(vectors, np.float64), np.asarray(codebook, np.float64)
    d = (z**2).sum(1)[:, None] - 2 * z @ c.T + (c**2).sum(1)[None, :]
    return np.maximum(d, 0.0)


def segment(d: np.ndarray, penalty: float, max_len: int) -> np.ndarray:
    """The codes [T] of the cheapest segmentation of one utterance with frame costs d [T, K]."""
    t_count, _ = d.shape
    prefix = np.vstack([np.zeros((1, d.shape[1])), np.cumsum(d, axis=0)])
    best = np.full(t_count + 1, np.inf)
    best[0] = 0.0
    back_len = np.zeros(t_count + 1, dtype=np.int64)
    back_code = np.zeros(t_count + 1, dtype=np.int64)
    for t in range(1, t_count + 1):
        lengths = np.arange(1, min(max_len, t) + 1)
        cost = prefix[t] - prefix[t - lengths]  # [L, K]: each segment ending at t, each code
        code = cost.argmin(axis=1)
        total = best[t - lengths] + cost[np.arange(len(lengths)), code] + penalty
        i = int(total.argmin())  # ties: the shortest segment
        best[t], back_len[t], back_code[t] = total[i], lengths[i], code[i]
    codes = np.empty(t_count, dtype=np.int64)
    t = t_count
    while t > 0:
        n = back_len[t]
        codes[t - n : t] = back_code[t]
        t -= n
    return codes


def mean_run(codes: list[np.ndarray]) -> float:
    """Frames per run of equal codes, over utterances."""
    frames = sum(len(c) for c in codes)
    runs = sum(1 + int((c[1:] != c[:-1]).sum()) for c in codes if len(c))
    return frames / runs if runs else 0.0


def _utterances(utterance_ids: np.ndarray) -> list[slice]:
    ids = np.asarray(utterance_ids)
    if len(ids) and not (ids[1:] >= ids[:-1]).all():
        raise ValueError("frames must be sorted by utterance")
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], int)
    ends = np.r_[starts[1:], len(ids)]
    return [slice(s, e) for s, e in zip(starts, ends, strict=True)]


def calibrate(costs: list[np.ndarray], p: DPDPParams, steps: int = 24) -> float:
    """The per-segment penalty whose DPDP segments of the utterances' frame costs `costs` are
    `p.mean_latents` long on average (bisection on a log scale; 0 when the raw codes already
    are); segments of at most `p.max_latents`."""
    if mean_run([d.argmin(axis=1) for d in costs]) >= p.mean_latents:
        return 0.0
    scale = float(np.mean([d.min(axis=1).mean() for d in costs]))
    lo, hi = np.log(scale * 1e-4), np.log(scale * 1e4)
    for _ in range(steps):
        mid = (lo + hi) / 2
        run = mean_run([segment(d, float(np.exp(mid)), p.max_latents) for d in costs])
        lo, hi = (mid, hi) if run < p.mean_latents else (lo, mid)
    return float(np.exp((lo + hi) / 2))


def calibration_pick(utterances: int, seed: int, count: int = 60) -> np.ndarray:
    """The utterances (indices, sorted) `calibrate` is run on: a seeded subset of `count`."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(utterances, min(count, utterances), replace=False))


def penalties(
    vectors: Mapping[str, np.ndarray],
    books: Mapping[str, np.ndarray],
    offsets: np.ndarray,
    p: DPDPParams,
) -> dict[str, float]:
    """Each system's penalty (`calibrate`): `vectors[system]` are the calibration utterances'
    vectors that system quantizes (utterance u: rows offsets[u]:offsets[u + 1]), `books[system]`
    its code vectors."""
    out = {}
    for name, book in books.items():
        d = squared_distances(vectors[name], book)
        out[name] = calibrate([d[a:b] for a, b in itertools.pairwise(offsets)], p)
    return out


def resegment(
    chunks: Iterable[tuple[Mapping[str, np.ndarray], np.ndarray]],
    books: Mapping[str, np.ndarray],
    penalty: Mapping[str, float],
    max_latents: int,
) -> dict[str, np.ndarray]:
    """Each system's DPDP codes over `chunks` of whole utterances, in order: a chunk is (the
    vectors each system quantizes, by system; its utterance offsets into those rows)."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in books}
    for vectors, offsets in chunks:
        for name, book in books.items():
            d = squared_distances(vectors[name], book)
            out[name] += [
                segment(d[a:b], penalty[name], max_latents) for a, b in itertools.pairwise(offsets)
            ]
    return {name: np.concatenate(parts) for name, parts in out.items()}


def utterance_offsets(utterance_ids: np.ndarray) -> np.ndarray:
    """Row offsets of the utterances of frames sorted by utterance (`utterance_ids`, one a row):
    utterance u is rows offsets[u]:offsets[u + 1]."""
    utts = _utterances(utterance_ids)
    return np.array([u.start for u in utts] + [len(utterance_ids)], dtype=np.int64)
