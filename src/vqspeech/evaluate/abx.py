"""ABX phone discriminability, libri-light's `eval_ABX` (Nguyen et al. 2020), vectorised.

Items are the phone intervals of the held-out alignments (not silences) that have a neighbour on
each side in their utterance; the context is "previous+next" phone (a silence may be context).
An item's frames are those libri-light's `ABXFeatureLoader` takes: with frame i of the
representation centred at c(i) = first_s + i * hop_s, the frames [ceil((onset - c(0)) / hop_s),
floor((offset - c(0)) / hop_s)), i.e. c(i) >= onset and c(i) + hop_s <= offset; an interval with
no such frame is no item. (libri-light writes c(i) = (i + 1/2) * feature_size; this project's
frames are centred 12.5 ms into their 10 ms hop, docs/design.md "Frames and time", so c(0) is
the representation's own. Times are compared with a tolerance of 1e-6 frame, so a boundary that
falls on a centre is not moved by floating-point rounding.)

For a cell (context, phone a, phone b, speakers), A and X are items of phone a and B an item of
phone b, all in that context; the triplet is an error when d(A, X) > d(B, X), a tie counts half.
- within speaker: A, B and X from one speaker, X drawn from A's own items (A != X);
- across speaker: A and B from one speaker, X from another: for each (context, speaker, phone a)
  at most `max_x_across` X speakers (libri-light's `max_x_across`, 5), seeded.

Item distance: DTW over frames with frame distance arccos(cosine) / pi, steps (1,0), (0,1), (1,1),
the accumulated cost divided by the length of the backtracked path (ties prefer the diagonal, then
(0,1), then (1,0)), as libri-light's `dtw`. Averages, as `eval_ABX`: within, per (speaker, a, b)
over contexts, then over speakers, then over (a, b); across, per (A speaker, a, b) over the
(context, X speaker) cells together, then over A speakers, then over (a, b).

One departure, in the sampling only: libri-light keeps at most `max_size_group` (10) items of a
(context, speaker, phone) group by drawing a fresh subset each time the group is used; here each
group is drawn once, seeded (`cap_groups`), so a run is reproducible and each pair's DTW is computed
once. The expected error is the same; `over_cap` counts the groups that are cut.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from vqspeech.phones import SILENCES

log = logging.getLogger(__name__)

EPS_FRAMES = 1e-6  # tolerance, in frames, when a boundary is compared with a frame centre


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
        return Items(
            *(getattr(self, f)[keep] for f in ("start", "length", "phone", "context", "speaker"))
        )


@dataclass(frozen=True)
class FrameGrid:
    """Where a representation's frames sit: frame i is centred `first_s + i * hop_s` seconds
    after the features' first sample."""

    first_s: float
    hop_s: float

    @classmethod
    def of(cls, stride: int, hop_s: float = 0.01, win_s: float = 0.025) -> FrameGrid:
        """Frames of `stride` feature frames each (1: the 10 ms features, 2: the 20 ms
        latents): the centre of the span from frame 0's first sample to frame stride-1's last."""
        return cls(((stride - 1) * hop_s + win_s) / 2, stride * hop_s)

    def span(self, onset: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """libri-light's frame range [first, end) of intervals [onset, offset)."""
        first = np.ceil((np.asarray(onset) - self.first_s) / self.hop_s - EPS_FRAMES)
        end = np.floor((np.asarray(offset) - self.first_s) / self.hop_s + EPS_FRAMES)
        return first.astype(np.int64), end.astype(np.int64)


def items_from_layout(
    phones: pd.DataFrame, ids: np.ndarray, counts: np.ndarray, grid: FrameGrid
) -> Items:
    """Items of the phone intervals `phones` (utterance_id, speaker, start, end, phone: every
    interval of each utterance, in time order, seconds from the features' first sample) over a
    frame table of utterances `ids` in row order with `counts` frames each, whose frames sit
    on `grid`; item rows index that table. Items come in the utterances' row order."""
    ids, counts = np.asarray(ids).astype(str), np.asarray(counts, dtype=np.int64)
    position = pd.Series(np.arange(len(ids)), index=ids)
    first_row = pd.Series(np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64), index=ids)
    pu = phones["utterance_id"].to_numpy().astype(str)
    where = position.reindex(pu).fillna(-1).to_numpy()  # intervals of no frame table: first
    if len(phones) and not (where[1:] >= where[:-1]).all():
        phones = phones.iloc[np.argsort(where, kind="stable")]
        pu = phones["utterance_id"].to_numpy().astype(str)
    label = phones["phone"].to_numpy().astype(str)
    onset, offset = phones["start"].to_numpy(float), phones["end"].to_numpy(float)
    same_prev = np.zeros(len(phones), dtype=bool)
    same_prev[1:] = pu[1:] == pu[:-1]
    same_next = np.zeros(len(phones), dtype=bool)
    same_next[:-1] = pu[:-1] == pu[1:]
    first, end = grid.span(onset, offset)
    n = pd.Series(counts, index=ids).reindex(pu).fillna(0).to_numpy(np.int64)
    first, end = np.maximum(first, 0), np.minimum(end, n)
    keep = same_prev & same_next & ~np.isin(label, SILENCES) & (first < n) & (end > first)
    idx = np.flatnonzero(keep)
    context = np.char.add(np.char.add(label[idx - 1], "+"), label[idx + 1])
    return Items(
        start=(first_row.reindex(pu[idx]).to_numpy(np.int64) + first[idx]).astype(np.int64),
        length=(end[idx] - first[idx]).astype(np.int64),
        phone=label[idx],
        context=context,
        speaker=phones["speaker"].to_numpy()[idx].astype(str),
    )


def compact(items: Items) -> tuple[Items, np.ndarray]:
    """The frame-table rows the items use (sorted) and the items re-indexed into those rows:
    a representation gathered at the rows scores them as the whole table would."""
    rows = np.unique(
        np.concatenate(
            [np.arange(s, s + n) for s, n in zip(items.start, items.length, strict=True)]
            or [np.zeros(0, np.int64)]
        )
    )
    start = np.searchsorted(rows, items.start).astype(np.int64)
    return Items(start, items.length, items.phone, items.context, items.speaker), rows


# what a same-context pair holds while its block is scored (measured about 74 B): its DTW
# distance (8 B), the pair's indices (16 B) and upper-triangle indices (16 B), lengths and sort
# order (24 B), its two cells of the context's matrix and of the symmetrizing temporary
PAIR_BYTES = 80


def blocks(items: Items, frame_bytes: int, max_bytes: float) -> list[tuple[Items, np.ndarray]]:
    """The items cut into blocks of whole contexts, contexts in sorted order (the order `abx`
    scores them in), each `compact`: (its items, re-indexed into its rows; those frame-table
    rows). A block holds contexts while its frames (`frame_bytes` each) and its same-context
    pairs (`PAIR_BYTES` each) stay within `max_bytes`; a context over that alone is a block of
    its own. Items keep their order within a block, so `abx_of_blocks` over the blocks gives
    `abx` of all the items."""
    names, ctx = np.unique(items.context, return_inverse=True)
    frames = np.bincount(ctx, weights=items.length, minlength=len(names))
    sizes = np.bincount(ctx, minlength=len(names))
    cost = frames * frame_bytes + sizes * (sizes - 1) / 2 * PAIR_BYTES
    cuts, total = [0], 0.0
    for c in range(len(names)):
        if total and total + cost[c] > max_bytes:
            cuts.append(c)
            total = 0.0
        total += cost[c]
    cuts.append(len(names))
    out = []
    for lo, hi in itertools.pairwise(cuts):
        if hi > lo:
            out.append(compact(items.subset((ctx >= lo) & (ctx < hi))))
    return out


def cap_groups(items: Items, max_group: int, seed: int) -> Items:
    """At most `max_group` items per (context, speaker, phone), a seeded random subset."""
    key = pd.Series(items.context) + "|" + items.speaker + "|" + items.phone
    order = np.random.default_rng(seed).permutation(len(items))
    rank = pd.Series(np.arange(len(items))).groupby(key.to_numpy()[order]).cumcount().to_numpy()
    keep = np.zeros(len(items), dtype=bool)
    keep[order[rank < max_group]] = True
    return items.subset(keep)


def over_cap(items: Items, max_group: int) -> tuple[int, int]:
    """(groups with more than `max_group` items, groups): what `cap_groups` will cut."""
    sizes = pd.Series(items.context + "|" + items.speaker + "|" + items.phone).value_counts()
    return int((sizes > max_group).sum()), len(sizes)


# --- DTW ------------------------------------------------------------------------------------

FrameDistance = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(rows_a [P, La], rows_b [P, Lb]) frame-table rows -> frame distances [P, La, Lb]."""


def unit(vectors: np.ndarray) -> np.ndarray:
    """float32 unit vectors of frames [N, D], each row on its own (so rows unit-normed a part at
    a time are those of the whole, for C-ordered arrays as the chunks are: numpy's row norms of
    a Fortran-ordered array may round differently): what `angular` compares."""
    out = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32, copy=False)


def angular(vectors: np.ndarray) -> FrameDistance:
    """arccos(cosine) / pi between frames, from their vectors [N, D]."""
    return angular_unit(unit(vectors))


def angular_unit(unit: np.ndarray) -> FrameDistance:
    """`angular` of vectors already made `unit`."""

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
    items: Items,
    pairs: np.ndarray,
    frame_distance: FrameDistance,
    chunk: int = 20_000,
    max_cells: int = 2**21,
    max_frames: int = 2**17,
) -> np.ndarray:
    """DTW distance of item pairs [P, 2], in chunks of pairs with similar lengths: at most
    `chunk` pairs, `max_cells` DTW cells (pairs x longest A x longest B) and `max_frames`
    gathered frames (pairs x (longest A + longest B)) a chunk, so long items come in smaller
    chunks and memory stays bounded whatever the lengths."""
    out = np.empty(len(pairs))
    la, lb = items.length[pairs[:, 0]], items.length[pairs[:, 1]]
    order = np.lexsort((lb, la))
    s = 0
    while s < len(order):
        window = order[s : s + chunk]
        count, longest_b = np.arange(1, len(window) + 1), np.maximum.accumulate(lb[window])
        fits = min(
            np.searchsorted(count * la[window] * longest_b, max_cells, side="right"),
            np.searchsorted(count * (la[window] + longest_b), max_frames, side="right"),
        )
        sel = window[: max(1, int(fits))]
        s += len(sel)
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
            "within": 100.0 * self.within,
            "across": 100.0 * self.across,
            "items": self.items,
            "within_cells": self.within_cells,
            "across_cells": self.across_cells,
        }


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


def _average(cells: pd.DataFrame, speaker: str) -> float:
    """eval_ABX's order: per (speaker, a, b) the mean over its cells (contexts; across, contexts
    and X speakers together), then the mean over speakers, then over (a, b) phone pairs."""
    if cells.empty:
        return float("nan")
    by_speaker = cells.groupby([speaker, "a", "b"])["error"].mean()
    by_pair = by_speaker.groupby(level=["a", "b"]).mean()
    return float(by_pair.mean())


def abx(
    items: Items,
    frame_distance: FrameDistance,
    max_x_across: int,
    seed: int,
) -> ABXResult:
    """Within- and across-speaker ABX error of `items` (already capped per group)."""
    return abx_of_blocks([(items, frame_distance)], max_x_across, seed)


def abx_of_blocks(
    parts: Iterable[tuple[Items, FrameDistance]], max_x_across: int, seed: int
) -> ABXResult:
    """`abx` of items given a block at a time (`blocks`: whole contexts, in sorted context order
    across the blocks, each with the frame distance of its own rows): the same result as `abx`
    of all of them, with one block's DTW distances in memory."""
    rng = np.random.default_rng(seed)
    within_rows: list[tuple] = []
    across_rows: list[tuple] = []
    count = 0
    for items, frame_distance in parts:
        _cells(items, frame_distance, max_x_across, rng, within_rows, across_rows)
        count += len(items)
        del items, frame_distance  # else this block's vectors live on beside the next one's
    within = pd.DataFrame(within_rows, columns=["ctx", "spk", "a", "b", "error"])
    across = pd.DataFrame(across_rows, columns=["ctx", "spk", "spk_x", "a", "b", "error"])
    return ABXResult(
        within=_average(within, "spk"),
        across=_average(across, "spk"),
        items=count,
        within_cells=len(within),
        across_cells=len(across),
    )


def _cells(
    items: Items,
    frame_distance: FrameDistance,
    max_x_across: int,
    rng: np.random.Generator,
    within_rows: list[tuple],
    across_rows: list[tuple],
) -> None:
    """Append the within and across cells of `items` (whole contexts), contexts in sorted order,
    X speakers drawn from `rng`."""
    contexts, ctx = np.unique(items.context, return_inverse=True)
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

    groups = pd.DataFrame({"ctx": ctx, "spk": items.speaker, "phone": items.phone})
    for c, g in groups.groupby("ctx", sort=True):
        by_sp = {k: v.index.to_numpy() for k, v in g.groupby(["spk", "phone"], sort=True)}
        speakers_of: dict[str, list[str]] = {}
        for s, a in by_sp:
            speakers_of.setdefault(a, []).append(s)
        for (s, a), ia in by_sp.items():
            others = [sx for sx in speakers_of[a] if sx != s]
            if len(others) > max_x_across:  # X speakers for this (context, speaker, phone a)
                others = sorted(rng.choice(others, max_x_across, replace=False).tolist())
            for (s2, b), ib in by_sp.items():
                if s2 != s or b == a:
                    continue
                if len(ia) >= 2:  # within: X and A both from ia
                    err = _triplet_error(matrix(ia, ia), matrix(ia, ib), exclude_diag=True)
                    within_rows.append((contexts[c], s, a, b, err))
                for sx in others:  # across: A, B from s; X from sx
                    ix = by_sp[(sx, a)]
                    err = _triplet_error(matrix(ix, ia), matrix(ix, ib), exclude_diag=False)
                    across_rows.append((contexts[c], s, sx, a, b, err))


def capped_items(
    intervals: pd.DataFrame,
    ids: np.ndarray,
    counts: np.ndarray,
    stride: int,
    max_group: int,
    seed: int,
) -> Items:
    """ABX items of the phone intervals over a frame table of utterances `ids` with `counts`
    frames each, at `stride` 10 ms frames per frame, capped per group ."""
    items = items_from_layout(intervals, ids, counts, FrameGrid.of(stride))
    cut, groups = over_cap(items, max_group)
    log.info(
        "ABX at %d ms: %d items of %d intervals; %d of %d (context, speaker, phone) groups "
        "over %d items, cut",
        10 * stride,
        len(items),
        len(intervals),
        cut,
        groups,
        max_group,
    )
    return cap_groups(items, max_group, seed)
