"""How well discrete codes line up with phones: every metric from one phone x code count table.

`Contingency.of(phones, codes)` counts frames per (phone, code) pair; `scores` derives the
clustering metrics of docs/design.md "Evaluation" from it and from the same label arrays
(sklearn for ARI/AMI/NMI/homogeneity/completeness/V-measure: the library's definitions):
- PNMI = I(phone; code) / H(phone);
- phone purity (many-to-one accuracy): each code mapped to its most frequent phone;
- cluster purity: each phone mapped to its most frequent code;
- one-to-one accuracy: the best one-to-one phone/code mapping (Hungarian, scipy);
- code perplexity, codes used, and bitrate = symbols per second x entropy (bits), ZeroSpeech 2019.
`boundary_scores` compares where codes change with where phones change, within a tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics

from vqspeech.phones import SILENCES


@dataclass(frozen=True)
class Contingency:
    counts: np.ndarray  # int64 [n_phones, n_codes]
    phones: list[str]  # row labels
    codes: list[int]  # column labels

    @classmethod
    def of(
        cls, phones: Sequence[str] | np.ndarray, codes: Sequence[int] | np.ndarray
    ) -> Contingency:
        phones, codes = np.asarray(phones), np.asarray(codes)
        if phones.shape != codes.shape or phones.ndim != 1:
            raise ValueError(
                f"need two equal 1-d label arrays, got {phones.shape} and {codes.shape}"
            )
        if len(phones) == 0:
            raise ValueError("no frames to score")
        p_names, p_idx = np.unique(phones, return_inverse=True)
        c_names, c_idx = np.unique(codes, return_inverse=True)
        counts = np.zeros((len(p_names), len(c_names)), dtype=np.int64)
        np.add.at(counts, (p_idx, c_idx), 1)
        return cls(counts, [str(p) for p in p_names], [int(c) for c in c_names])

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def pnmi(self) -> float:
        p = self.counts / self.n
        px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        mi = float((p[nz] * np.log(p[nz] / (px @ py)[nz])).sum())
        h_phone = float(-(px[px > 0] * np.log(px[px > 0])).sum())
        return mi / h_phone if h_phone > 0 else 0.0

    def phone_purity(self) -> float:
        return float(self.counts.max(axis=0).sum() / self.n)

    def cluster_purity(self) -> float:
        return float(self.counts.max(axis=1).sum() / self.n)

    def one_to_one(self) -> float:
        rows, cols = linear_sum_assignment(self.counts, maximize=True)
        return float(self.counts[rows, cols].sum() / self.n)

    def code_entropy_bits(self) -> float:
        return entropy_bits(self.counts.sum(0))


def entropy_bits(counts: np.ndarray) -> float:
    """Entropy in bits of the distribution that `counts` (occurrences per symbol) give."""
    q = np.asarray(counts, dtype=np.float64)
    q = q[q > 0] / q.sum()
    return float(-(q * np.log2(q)).sum())


def scores(
    phones: Sequence[str] | np.ndarray,
    codes: Sequence[int] | np.ndarray,
    symbols_per_second: float = 50.0,
) -> dict[str, float]:
    """Every clustering metric for aligned frame labels (one phone and one code per frame)."""
    table = Contingency.of(phones, codes)
    h_bits = table.code_entropy_bits()
    h, c, v = metrics.homogeneity_completeness_v_measure(phones, codes)
    return {
        "frames": table.n,
        "ari": metrics.adjusted_rand_score(phones, codes),
        "ami": metrics.adjusted_mutual_info_score(phones, codes),
        "ami_max": metrics.adjusted_mutual_info_score(phones, codes, average_method="max"),
        "nmi": metrics.normalized_mutual_info_score(phones, codes),
        "nmi_geometric": metrics.normalized_mutual_info_score(
            phones, codes, average_method="geometric"
        ),
        "homogeneity": h,
        "completeness": c,
        "v_measure": v,
        "pnmi": table.pnmi(),
        "phone_purity": table.phone_purity(),
        "cluster_purity": table.cluster_purity(),
        "one_to_one": table.one_to_one(),
        "code_perplexity": 2.0**h_bits,
        "codes_used": len(table.codes),
        "bitrate": symbols_per_second * h_bits,
    }


def speech_mask(phones: np.ndarray) -> np.ndarray:
    """True for frames that are not silence (`sil`, `sp`, `spn`)."""
    return ~np.isin(np.asarray(phones), SILENCES)


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Indices i where labels[i] != labels[i - 1] (a boundary before frame i)."""
    labels = np.asarray(labels)
    return np.flatnonzero(labels[1:] != labels[:-1]) + 1


def boundary_scores(
    phone_seqs: Sequence[np.ndarray],
    code_seqs: Sequence[np.ndarray],
    tolerance: int,
    speech_only: bool = False,
) -> dict[str, float]:
    """Phone-boundary precision, recall and F1 of code changes, per utterance, pooled.

    A code boundary is a hit when a phone boundary lies within `tolerance` frames of it; each
    phone boundary is matched at most once (greedily, nearest first: `boundary_hits`). With
    `speech_only`, only boundaries (phone and code alike) with speech frames on both sides
    count: phone-to-phone changes inside speech, not the edges of silences. An utterance of n
    frames costs O(n log n) time per unit of `tolerance` and O(n) memory (no pair list).
    """
    hits = n_pred = n_true = 0
    for phones, codes in zip(phone_seqs, code_seqs, strict=True):
        true, pred = boundaries(phones), boundaries(codes)
        if speech_only:
            speech = speech_mask(phones)
            true = true[speech[true - 1] & speech[true]]
            pred = pred[speech[pred - 1] & speech[pred]]
        n_true += len(true)
        n_pred += len(pred)
        hits += boundary_hits(pred, true, tolerance)
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"boundary_precision": precision, "boundary_recall": recall, "boundary_f1": f1}


def boundary_hits(pred: np.ndarray, true: np.ndarray, tolerance: int) -> int:
    """How many of the boundaries `pred` (increasing frame indices) greedy matching pairs with
    the boundaries `true` (increasing too) within `tolerance` frames, each used at most once.

    The greedy order is that of every pair (|p_i - t_j|, i, j) sorted: nearest first, then by
    pred, then by true boundary. It is taken a distance d = 0, 1, ..., tolerance at a time,
    each in O(n log n) numpy: d = 0 pairs equal positions, which never compete. For d > 0,
    after d = 0 a position holds at most one unmatched boundary, and a pair joins positions d
    apart; so the unmatched boundaries fall into chains x, x + d, x + 2d, ... that alternate
    pred and true (a gap or two of a kind in a row ends one). Taking preds in order, each takes
    the true boundary before it if free, else the one after: along a chain that pairs its
    1st and 2nd, 3rd and 4th, ... members, and only those.
    """
    pred = np.asarray(pred, dtype=np.int64)
    true = np.asarray(true, dtype=np.int64)
    if tolerance < 0 or len(pred) == 0 or len(true) == 0:
        return 0
    free_pred = ~np.isin(pred, true, assume_unique=True)  # d = 0: the same position
    free_true = ~np.isin(true, pred, assume_unique=True)
    hits = len(pred) - int(free_pred.sum())
    span = max(int(pred[-1]), int(true[-1])) - min(int(pred[0]), int(true[0]))
    for d in range(1, min(tolerance, span) + 1):
        p_at, t_at = np.flatnonzero(free_pred), np.flatnonzero(free_true)
        if len(p_at) == 0 or len(t_at) == 0:
            break
        where = np.concatenate([pred[p_at], true[t_at]])
        is_pred = np.arange(len(where)) < len(p_at)
        order = np.lexsort((where, where % d))  # chains of one residue class mod d, in order
        x, kind = where[order], is_pred[order]
        joined = np.zeros(len(x), dtype=bool)  # joined to the member before it in a chain
        joined[1:] = (x[1:] - x[:-1] == d) & (kind[1:] != kind[:-1])
        at = np.arange(len(x))
        first = np.maximum.accumulate(np.where(joined, 0, at))  # where each one's chain starts
        second = joined & ((at - first) % 2 == 1)  # the 2nd member of a pair
        matched = np.empty(len(x), dtype=bool)
        matched[order] = second | np.append(second[1:], False)
        free_pred[p_at[matched[: len(p_at)]]] = False
        free_true[t_at[matched[len(p_at) :]]] = False
        hits += int(second.sum())
    return hits


def mean_run_length(code_seqs: Sequence[np.ndarray]) -> float:
    """Average number of consecutive frames with the same code."""
    runs = sum(len(boundaries(c)) + 1 for c in code_seqs if len(c))
    frames = sum(len(c) for c in code_seqs)
    return frames / runs if runs else 0.0
