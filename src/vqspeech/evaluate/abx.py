"""ABX phone discriminability (libri-light definition), vectorised.

Items are phone occurrences in the held-out alignments with their left and right neighbours (the
triphone context), read from the 20 ms frame labels: a run of frames with one speech phone, with a
run on each side. For a cell (context, phone a, phone b, speakers), A and X are items of phone a and
B an item of phone b, all in that context; the triplet is an error when d(A, X) > d(B, X), a tie
counts half.

- within speaker: A, B and X from one speaker, A != X;
- across speaker: A and B from one speaker, X from another.

Item distance: DTW over frames with frame distance arccos(cosine) / pi, steps (1,0), (0,1), (1,1),
the accumulated cost divided by the length of the backtracked path (ties prefer the diagonal, then
(0,1), then (1,0)), as libri-light's `dtw`. Errors are averaged per cell, then over contexts, then
over speakers (pairs), then over (a, b) phone pairs, as libri-light's `eval_ABX`. Groups of items
with the same (context, speaker, phone) are subsampled to at most `max_group` items (libri-light's
`max_size_group`, 10) and across-speaker X groups to `max_x_across` (libri-light's 5), seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vqspeech.phones import SILENCES


@dataclass(frozen=True)
class Items:
    """Phone occurrences: frame rows [start, start + length) of a frame table, with labels."""

    start: np.ndarray  # int64 [N], first row in the frame table
    length: np.ndarray  # int64 [N], frames
    phone: np.ndarray  # str [N]
    context: np.ndarray  # str [N], "prev+next"
    speaker: np.ndarray  # str [N]

    def __len__(self) -> int:
        return len(self.start)

    def subset(self, keep: np.ndarray) -> Items:
        return Items(*(getattr(self, f)[keep] for f in ("start", "length", "phone", "context",
                                                        "speaker")))  # fmt: skip


def items_from_frames(frames: pd.DataFrame) -> Items:
    """Triphone items from a frame table (utterance_id, speaker, frame, phone) sorted by
    (utterance_id, frame), one row per frame; row numbers index that table."""
    utt = frames["utterance_id"].to_numpy()
    phone = frames["phone"].to_numpy()
    frame = frames["frame"].to_numpy()
    if (
        len(frames)
        and not (
            (utt[1:] > utt[:-1]) | ((utt[1:] == utt[:-1]) & (frame[1:] == frame[:-1] + 1))
        ).all()
    ):
        raise ValueError("frames must be sorted by (utterance_id, frame) with no gaps")
    new_run = np.ones(len(frames), dtype=bool)
    new_run[1:] = (phone[1:] != phone[:-1]) | (utt[1:] != utt[:-1])
    starts = np.flatnonzero(new_run)
    lengths = np.diff(np.append(starts, len(frames)))
    run_utt, run_phone = utt[starts], phone[starts]
    same_prev = np.zeros(len(starts), dtype=bool)
    same_prev[1:] = run_utt[1:] == run_utt[:-1]
    same_next = np.zeros(len(starts), dtype=bool)
    same_next[:-1] = run_utt[:-1] == run_utt[1:]
    keep = same_prev & same_next & ~np.isin(run_phone, SILENCES)
    idx = np.flatnonzero(keep)
    context = np.char.add(np.char.add(run_phone[idx - 1].astype(str), "+"),
                          run_phone[idx + 1].astype(str))  # fmt: skip
    return Items(
        start=starts[idx].astype(np.int64),
        length=lengths[idx].astype(np.int64),
        phone=run_phone[idx].astype(str),
        context=context,
        speaker=frames["speaker"].to_numpy()[starts[idx]].astype(str),
    )


def cap_groups(items: Items, max_group: int, seed: int) -> Items:
    """At most `max_group` items per (context, speaker, phone), a seeded random subset."""
    key = pd.Series(items.context) + "|" + items.speaker + "|" + items.phone
    order = np.random.default_rng(seed).permutation(len(items))
    rank = pd.Series(np.arange(len(items))).groupby(key.to_numpy()[order]).cumcount().to_numpy()
    keep = np.zeros(len(items), dtype=bool)
    keep[order[rank < max_group]] = True
    return items.subset(keep)


# --- DTW ------------------------------------------------------------------------------------

FrameDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(rows_a [P, La], rows_b [P, Lb]) frame-table rows -> frame distances [P, La, Lb]."""


def angular(vectors: np.ndarray) -> FrameDistance:
    """arccos(cosine) / pi between frames, from their vectors [N, D]."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    unit = unit.astype(np.float32)

    def dist(rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
        cos = np.einsum("pid,pjd->pij", unit[rows_a], unit[rows_b])
        return np.arccos(np.clip(cos, -1.0, 1.0)) / np.pi

    return dist


def angular_codes(codes: np.ndarray, codebook: np.ndarray) -> FrameDistance:
    """arccos(cosine) / pi between the code vectors of frames: looked up from a K x K table, so
    frames with equal codes have exactly equal distances (ties are ties)."""
    unit = codebook / np.maximum(np.linalg.norm(codebook, axis=1, keepdims=True), 1e-12)
    table = np.arccos(np.clip(unit @ unit.T, -1.0, 1.0)) / np.pi
    np.fill_diagonal(table, 0.0)

    def dist(rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
        return table[codes[rows_a][:, :, None], codes[rows_b][:, None, :]]

    return dist


def dtw(d: np.ndarray, len_a: np.ndarray, len_b: np.ndarray) -> np.ndarray:
    """Path-length-normalized DTW of P frame-distance matrices d [P, La, Lb] at once, each read
    up to its own lengths (len_a[p], len_b[p]); the padding beyond is never reached."""
    p_count, la, lb = d.shape
    cost = np.full((p_count, la + 1, lb + 1), np.inf)
    cost[:, 0, 0] = 0.0
    for k in range(la + lb - 1):  # anti-diagonals: cells on one depend only on earlier ones
        i = np.arange(max(0, k - lb + 1), min(k, la - 1) + 1)
        j = k - i
        best = np.minimum(np.minimum(cost[:, i, j + 1], cost[:, i + 1, j]), cost[:, i, j])
        cost[:, i + 1, j + 1] = d[:, i, j] + best
    rows = np.arange(p_count)
    i, j = len_a.astype(np.int64), len_b.astype(np.int64)  # 1-based into `cost`
    final = cost[rows, i, j]
    path = np.ones(p_count, dtype=np.int64)
    while True:
        active = (i > 1) & (j > 1)
        if not active.any():
            break
        up, left, diag = cost[rows, i - 1, j], cost[rows, i, j - 1], cost[rows, i - 1, j - 1]
        step_diag = active & (diag <= left) & (diag <= up)
        step_left = active & ~step_diag & (left <= up)
        step_up = active & ~step_diag & ~step_left
        i = i - (step_diag | step_up)
        j = j - (step_diag | step_left)
        path += active
    path += (i - 1) + (j - 1)  # straight run along the first row or column
    return final / path


def pair_distances(
    items: Items, pairs: np.ndarray, frame_distance: FrameDistance, chunk: int = 20_000
) -> np.ndarray:
    """DTW distance of item pairs [P, 2], in chunks of pairs with similar lengths."""
    out = np.empty(len(pairs))
    la, lb = items.length[pairs[:, 0]], items.length[pairs[:, 1]]
    order = np.lexsort((lb, la))
    for s in range(0, len(order), chunk):
        sel = order[s : s + chunk]
        a, b = pairs[sel, 0], pairs[sel, 1]
        ma, mb = int(la[sel].max()), int(lb[sel].max())
        rows_a = items.start[a][:, None] + np.minimum(np.arange(ma), items.length[a][:, None] - 1)
        rows_b = items.start[b][:, None] + np.minimum(np.arange(mb), items.length[b][:, None] - 1)
        out[sel] = dtw(frame_distance(rows_a, rows_b), la[sel], lb[sel])
    return out


# --- ABX --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ABXResult:
    within: float  # error rate, 0..1
    across: float
    items: int
    within_cells: int
    across_cells: int

    def as_percent(self) -> dict[str, float | int]:
        return {
            "within": 100.0 * self.within, "across": 100.0 * self.across, "items": self.items,
            "within_cells": self.within_cells, "across_cells": self.across_cells,
        }  # fmt: skip


def _triplet_error(dxa: np.ndarray, dxb: np.ndarray, exclude_diag: bool) -> float:
    """Mean error over X (rows), A (cols of dxa) and B (cols of dxb); dxa[x, x] skipped when
    X and A come from the same set."""
    gt = (dxa[:, :, None] > dxb[:, None, :]).sum(axis=2).astype(float)
    eq = (dxa[:, :, None] == dxb[:, None, :]).sum(axis=2).astype(float)
    err = gt + 0.5 * eq
    n_x, n_a = dxa.shape
    if exclude_diag:
        err[np.arange(n_x), np.arange(n_x)] = 0.0
        n_pairs = n_x * (n_a - 1)
    else:
        n_pairs = n_x * n_a
    return float(err.sum() / (n_pairs * dxb.shape[1]))


def _average(cells: pd.DataFrame, speaker_cols: list[str]) -> float:
    """Mean over contexts, then over speakers, then over (a, b) phone pairs."""
    if cells.empty:
        return float("nan")
    by_speaker = cells.groupby([*speaker_cols, "a", "b"])["error"].mean()
    by_pair = by_speaker.groupby(level=["a", "b"]).mean()
    return float(by_pair.mean())


def abx(
    items: Items, frame_distance: FrameDistance, max_x_across: int, seed: int,
) -> ABXResult:  # fmt: skip
    """Within- and across-speaker ABX error of `items` (already capped per group)."""
    _, ctx = np.unique(items.context, return_inverse=True)
    # DTW of every pair of items sharing a context, computed once, kept as one matrix per context
    order = np.argsort(ctx, kind="stable")
    sizes = np.bincount(ctx)
    first = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pos = np.empty(len(items), dtype=np.int64)
    pos[order] = np.arange(len(items)) - np.repeat(first, sizes)
    iu = [np.triu_indices(n, 1) for n in sizes]
    pairs = np.concatenate(
        [np.stack([order[f + r], order[f + c]], 1) for f, (r, c) in zip(first, iu, strict=True)]
        or [np.empty((0, 2), dtype=np.int64)]
    )
    dist = pair_distances(items, pairs, frame_distance) if len(pairs) else np.empty(0)
    mats, offset = [], 0
    for n, (r, c) in zip(sizes, iu, strict=True):
        m = np.zeros((n, n))
        m[r, c] = dist[offset : offset + len(r)]
        mats.append(m + m.T)
        offset += len(r)

    def matrix(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return mats[ctx[xs[0]]][np.ix_(pos[xs], pos[ys])]

    rng = np.random.default_rng(seed)
    groups = pd.DataFrame({"ctx": ctx, "spk": items.speaker, "phone": items.phone})
    within_rows, across_rows = [], []
    for c, g in groups.groupby("ctx", sort=True):
        by_sp = {k: v.index.to_numpy() for k, v in g.groupby(["spk", "phone"], sort=True)}
        speakers = sorted({s for s, _ in by_sp})
        for (s, a), ia in by_sp.items():
            for (s2, b), ib in by_sp.items():
                if b == a:
                    continue
                if s2 == s and len(ia) >= 2:  # within: X and A both from ia
                    err = _triplet_error(matrix(ia, ia), matrix(ia, ib), exclude_diag=True)
                    within_rows.append((c, s, a, b, err))
                if s2 != s:
                    continue
                for sx in speakers:  # across: A, B from s; X from sx != s
                    ix = by_sp.get((sx, a))
                    if sx == s or ix is None:
                        continue
                    if len(ix) > max_x_across:
                        ix = np.sort(rng.choice(ix, max_x_across, replace=False))
                    err = _triplet_error(matrix(ix, ia), matrix(ix, ib), exclude_diag=False)
                    across_rows.append((c, s, sx, a, b, err))
    within = pd.DataFrame(within_rows, columns=["ctx", "spk", "a", "b", "error"])
    across = pd.DataFrame(across_rows, columns=["ctx", "spk", "spk_x", "a", "b", "error"])
    return ABXResult(
        within=_average(within, ["spk"]),
        across=_average(across, ["spk", "spk_x"]),
        items=len(items),
        within_cells=len(within),
        across_cells=len(across),
    )
