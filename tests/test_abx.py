"""ABX: the DTW against a plain reference, items from the alignment's intervals as libri-light
takes them, and constructed cases whose ABX error is known (its averaging order among them)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vqspeech.evaluate import abx
from vqspeech.evaluate.codes import layout_of

ABX = {"max_x_across": 5, "seed": 0}  # eval.abx.max_x_across, train.seed


def reference_dtw(d: np.ndarray) -> float:
    """libri-light's DTW written out cell by cell: cumulative cost, then the backtracked path's
    length (ties prefer the diagonal, then (i, j-1), then (i-1, j))."""
    n, m = d.shape
    c = np.zeros((n, m))
    c[0, 0] = d[0, 0]
    for i in range(1, n):
        c[i, 0] = d[i, 0] + c[i - 1, 0]
    for j in range(1, m):
        c[0, j] = d[0, j] + c[0, j - 1]
    for i in range(1, n):
        for j in range(1, m):
            c[i, j] = d[i, j] + min(c[i - 1, j], c[i - 1, j - 1], c[i, j - 1])
    i, j, length = n - 1, m - 1, 1
    while i > 0 and j > 0:
        up, left, diag = c[i - 1, j], c[i, j - 1], c[i - 1, j - 1]
        if diag <= left and diag <= up:
            i, j = i - 1, j - 1
        elif left <= up:
            j -= 1
        else:
            i -= 1
        length += 1
    length += i + j
    return c[n - 1, m - 1] / length


def test_batched_dtw_equals_the_reference_for_every_length_pair():
    rng = np.random.default_rng(0)
    lengths = [(1, 1), (1, 5), (5, 1), (3, 7), (7, 3), (6, 6), (2, 9)]
    d = rng.random((len(lengths), 7, 9))
    la, lb = np.array(lengths).T
    got = abx.dtw(d, la, lb)
    want = [reference_dtw(d[p, :a, :b]) for p, (a, b) in enumerate(lengths)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_dtw_known_answers():
    # c = [[1, 3], [4, 5]]: the diagonal path, two cells long -> 5 / 2
    assert abx.dtw(np.array([[[1.0, 2.0], [3.0, 4.0]]]), np.array([2]), np.array([2]))[0] == 2.5
    # time warping costs nothing: u u v against u v
    u, v = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    frames = np.stack([u, u, v, u, v])
    items = abx.Items(
        np.array([0, 3]),
        np.array([3, 2]),
        np.array(["a", "a"]),
        np.array(["x+y"] * 2),
        np.array(["s", "s"]),
    )
    assert abx.pair_distances(items, np.array([[0, 1]]), abx.angular(frames))[0] == 0.0
    # orthogonal frames are 0.5 apart, opposite ones 1
    one = abx.Items(
        np.array([0, 1, 2]),
        np.array([1, 1, 1]),
        np.array(["a"] * 3),
        np.array(["x+y"] * 3),
        np.array(["s"] * 3),
    )
    d = abx.pair_distances(one, np.array([[0, 1], [0, 2]]), abx.angular(np.stack([u, v, -u])))
    np.testing.assert_allclose(d, [0.5, 1.0])


def frame_table(lengths: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame(
        [(u, k) for u, n in lengths.items() for k in range(n)], columns=["utterance_id", "frame"]
    )


INTERVALS = pd.DataFrame(
    [
        ("u1", "s1", -0.02, 0.05, "sil"),
        ("u1", "s1", 0.05, 0.11, "AH"),
        ("u1", "s1", 0.11, 0.20, "T"),
        ("u1", "s1", 0.20, 0.30, "sil"),
        ("u2", "s2", 0.0, 0.04, "K"),  # no left neighbour: context only
        ("u2", "s2", 0.04, 0.055, "AE"),  # 15 ms: one 10 ms frame, no 20 ms one
        ("u2", "s2", 0.055, 0.10, "D"),
        ("u2", "s2", 0.10, 0.20, "sil"),
    ],
    columns=["utterance_id", "speaker", "start", "end", "phone"],
)


def items_of(phones: pd.DataFrame, frames: pd.DataFrame, grid: abx.FrameGrid) -> abx.Items:
    """The ABX items of a frame table as the evaluate stage finds them: its layout (data/codes'
    reader, which checks the table), then `items_from_layout`."""
    layout = layout_of(frames)
    return abx.items_from_layout(phones, layout.ids, layout.counts, grid)


def test_items_are_libri_light_frames_of_speech_intervals_with_two_neighbours():
    # 10 ms frames centred at 12.5 + 10 i ms: frame i is in [onset, offset) when its centre is
    # at or after the onset and one hop before the offset (eval_ABX's ceil / floor)
    items = items_of(INTERVALS, frame_table({"u1": 28, "u2": 18}), abx.FrameGrid.of(1))
    assert items.phone.tolist() == ["AH", "T", "AE", "D"]
    assert items.context.tolist() == ["sil+T", "AH+sil", "K+D", "AE+sil"]
    assert items.speaker.tolist() == ["s1", "s1", "s2", "s2"]
    assert items.start.tolist() == [4, 10, 28 + 3, 28 + 5]  # u2's rows follow u1's 28
    assert items.length.tolist() == [5, 8, 1, 3]
    # 20 ms frames centred at 17.5 + 20 i ms: AE has no frame, D keeps AE as its context
    items = items_of(INTERVALS, frame_table({"u1": 14, "u2": 9}), abx.FrameGrid.of(2))
    assert items.phone.tolist() == ["AH", "T", "D"] and items.context[-1] == "AE+sil"
    assert items.start.tolist() == [2, 5, 14 + 2] and items.length.tolist() == [2, 4, 2]
    # a frame table shorter than the intervals cuts the items at its end
    short = items_of(INTERVALS, frame_table({"u1": 12, "u2": 18}), abx.FrameGrid.of(1))
    assert short.length.tolist()[:2] == [5, 2]
    # utterances in another row order (a shard's): rows and items follow the table's order
    swapped = items_of(INTERVALS, frame_table({"u2": 18, "u1": 28}), abx.FrameGrid.of(1))
    assert swapped.phone.tolist() == ["AE", "D", "AH", "T"]
    assert swapped.start.tolist() == [3, 5, 18 + 4, 18 + 10]
    assert swapped.length.tolist() == [1, 3, 5, 8]
    # the same items from the layout alone (utterances and frame counts: no frame table)
    layout = abx.items_from_layout(
        INTERVALS, np.array(["u2", "u1"]), np.array([18, 28]), abx.FrameGrid.of(1)
    )
    assert layout.start.tolist() == swapped.start.tolist()
    split = pd.concat([frame_table({"u1": 2}), frame_table({"u2": 3}), frame_table({"u1": 2})])
    with pytest.raises(ValueError, match="rows not grouped by utterance"):
        items_of(INTERVALS, split, abx.FrameGrid.of(1))
    with pytest.raises(ValueError, match=r"frames 0, 1, \.\.\. in order"):
        items_of(INTERVALS, frame_table({"u1": 3}).iloc[[1, 0, 2]], abx.FrameGrid.of(1))


def test_frame_grid_centres_and_boundaries_on_a_centre():
    assert abx.FrameGrid.of(1) == pytest.approx(abx.FrameGrid(0.0125, 0.01))
    assert abx.FrameGrid.of(2) == pytest.approx(abx.FrameGrid(0.0175, 0.02))
    grid = abx.FrameGrid.of(1)
    onsets = 0.0125 + 0.01 * np.arange(200)  # each exactly on a centre (up to rounding)
    first, end = grid.span(onsets, onsets + 0.03)
    assert (first == np.arange(200)).all() and (end - first == 3).all()


def test_cap_groups_keeps_at_most_n_per_context_speaker_phone_and_is_seeded():
    n = 30
    items = abx.Items(
        np.arange(n),
        np.ones(n, dtype=np.int64),
        np.array(["a", "b"] * 15),
        np.array(["x+y"] * n),
        np.array(["s"] * n),
    )
    capped = abx.cap_groups(items, 4, seed=1)
    assert sorted(capped.phone.tolist()) == ["a"] * 4 + ["b"] * 4
    assert capped.start.tolist() == abx.cap_groups(items, 4, seed=1).start.tolist()
    assert capped.start.tolist() != abx.cap_groups(items, 4, seed=2).start.tolist()


def one_frame_items(phones: list[str], speakers: list[str], contexts: list[str] | None = None):
    n = len(phones)
    return abx.Items(
        np.arange(n),
        np.ones(n, dtype=np.int64),
        np.array(phones),
        np.array(contexts or ["x+y"] * n),
        np.array(speakers),
    )


def two_speaker_items():
    phones = ["a", "a", "a", "b", "b", "b"] * 2
    speakers = ["s1"] * 6 + ["s2"] * 6
    return one_frame_items(phones, speakers), phones, speakers


def test_separable_phones_give_zero_error_and_identical_frames_give_one_half():
    items, phones, _ = two_speaker_items()
    rng = np.random.default_rng(0)
    direction = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0]}
    vectors = np.array([direction[p] for p in phones]) + rng.normal(0, 0.01, (12, 3))
    r = abx.abx(items, abx.angular(vectors), **ABX)
    assert (r.within, r.across) == (0.0, 0.0)
    assert r.within_cells == 4 and r.across_cells == 4  # (s, a, b) x 2 speakers; (s, sx, a, b)
    r = abx.abx(items, abx.angular(np.ones((12, 3))), **ABX)
    assert (r.within, r.across) == (0.5, 0.5)  # every comparison a tie, counted half


def test_a_speaker_dependent_relabelling_is_perfect_within_and_always_wrong_across():
    items, phones, speakers = two_speaker_items()
    e = np.eye(2)
    vectors = np.array(
        [e[int((p == "a") == (s == "s1"))] for p, s in zip(phones, speakers, strict=True)]
    )
    r = abx.abx(items, abx.angular(vectors), **ABX)
    assert (r.within, r.across) == (0.0, 1.0)


def test_hand_computed_cell_with_a_closer_impostor():
    # a items at 0 and 10 degrees, the b item at 5 degrees: each X of a has B closer than A
    angles = np.deg2rad([0.0, 10.0, 5.0])
    vectors = np.stack([np.cos(angles), np.sin(angles)], 1)
    r = abx.abx(one_frame_items(["a", "a", "b"], ["s"] * 3), abx.angular(vectors), **ABX)
    assert r.within == 1.0 and r.within_cells == 1  # (b, a) needs two b items: no cell
    assert np.isnan(r.across) and r.across_cells == 0


def test_errors_are_averaged_per_context_before_pooling():
    # context c1: 2 a + 1 b, always wrong (2 triplets); c2: 4 a + 1 b, always right (12 triplets)
    angles = np.deg2rad([0, 10, 5, 0, 1, 2, 3, 90])  # c1: 3 items, c2: 5
    vectors = np.stack([np.cos(angles), np.sin(angles)], 1)
    items = one_frame_items(
        ["a", "a", "b", "a", "a", "a", "a", "b"], ["s"] * 8, ["c1"] * 3 + ["c2"] * 5
    )
    r = abx.abx(items, abx.angular(vectors), **ABX)
    assert r.within == pytest.approx(0.5)  # not 2 / 14 as pooling the triplets would give


def test_across_averages_contexts_and_x_speakers_together_as_eval_abx():
    # speaker s says a and b in contexts c1 and c2; X speakers x1, x2 say a in c1, x1 in c2.
    # c1's two cells are right (X = A's direction), c2's one cell wrong (X = B's direction)
    e0, e1 = [1.0, 0.0], [0.0, 1.0]
    rows = [
        ("a", "s", "c1", e0),
        ("b", "s", "c1", e1),
        ("a", "x1", "c1", e0),
        ("a", "x2", "c1", e0),
        ("a", "s", "c2", e0),
        ("b", "s", "c2", e1),
        ("a", "x1", "c2", e1),
    ]
    phones, speakers, contexts, vectors = zip(*rows, strict=True)
    items = one_frame_items(list(phones), list(speakers), list(contexts))
    r = abx.abx(items, abx.angular(np.array(vectors)), **ABX)
    assert r.across_cells == 3
    # per (s, a, b) over the (context, X speaker) cells: (0 + 0 + 1) / 3; averaging over
    # contexts per (s, X speaker) first would give ((0 + 1) / 2 + 0) / 2 = 0.25
    assert r.across == pytest.approx(1 / 3)


def test_max_x_across_caps_x_speakers_per_context_speaker_and_phone():
    # s says a and b; six other speakers say a: one cell per X speaker, at most max_x_across
    phones = ["a", "b"] + ["a"] * 6
    speakers = ["s", "s"] + [f"x{i}" for i in range(6)]
    items = one_frame_items(phones, speakers)
    vectors = np.random.default_rng(0).standard_normal((8, 3))
    capped = abx.abx(items, abx.angular(vectors), max_x_across=4, seed=0)
    assert capped.across_cells == 4
    assert abx.abx(items, abx.angular(vectors), max_x_across=10, seed=0).across_cells == 6
    again = abx.abx(items, abx.angular(vectors), max_x_across=4, seed=0)
    assert again.across == capped.across  # seeded


def test_over_cap_counts_the_groups_cap_groups_cuts():
    items = one_frame_items(["a"] * 5 + ["b"] * 2, ["s"] * 7)
    assert abx.over_cap(items, 4) == (1, 2) and abx.over_cap(items, 5) == (0, 2)


def test_code_distances_are_the_code_vectors_angular_distances():
    rng = np.random.default_rng(3)
    codebook = rng.standard_normal((5, 4))
    codes = rng.integers(0, 5, 40)
    rows_a, rows_b = rng.integers(0, 40, (6, 3)), rng.integers(0, 40, (6, 4))
    got = abx.angular_codes(codes, codebook)(rows_a, rows_b)
    want = abx.angular(codebook[codes])(rows_a, rows_b)
    np.testing.assert_allclose(got, want, atol=1e-3)
    same = codes[rows_a][:, :, None] == codes[rows_b][:, None, :]
    assert (got[same] == 0).all()  # equal codes: exactly zero, so ties stay ties


def random_items(rng: np.random.Generator, n: int = 400, contexts: int = 12, speakers: int = 9):
    """Items of 1-6 frames over a frame table of random vectors, in random contexts, phones and
    speakers (enough speakers that max_x_across draws X speakers)."""
    length = rng.integers(1, 7, n)
    start = np.r_[0, np.cumsum(length)[:-1]]
    items = abx.Items(
        start,
        length,
        rng.choice(["a", "b", "c"], n),
        rng.choice([f"c{i:02d}" for i in range(contexts)], n),
        rng.choice([f"s{i}" for i in range(speakers)], n),
    )
    return items, rng.standard_normal((int(length.sum()), 4))


@pytest.mark.parametrize("max_bytes", [1, 2_000, 40_000, 1e12])
def test_abx_a_block_of_contexts_at_a_time_is_abx_of_all_items(max_bytes):
    rng = np.random.default_rng(3)
    items, vectors = random_items(rng)
    whole = abx.abx(items, abx.angular(vectors), max_x_across=3, seed=5)
    assert whole.across_cells > 0 and whole.within_cells > 0
    blocks = abx.blocks(items, 16, max_bytes)
    # whole contexts, in sorted order, every item once, each block's items re-indexed into its
    # own rows, and no block over the budget unless it is one context
    contexts = [sorted(set(part.context)) for part, _ in blocks]
    assert [c for cs in contexts for c in cs] == sorted(set(items.context))
    assert sum(len(part) for part, _ in blocks) == len(items)
    for part, rows in blocks:
        frames = part.length.sum()
        pairs = sum(n * (n - 1) / 2 for n in pd.Series(part.context).value_counts())
        assert frames * 16 + pairs * abx.PAIR_BYTES <= max_bytes or len(set(part.context)) == 1
        for s, n, global_start in zip(
            part.start, part.length, items.start[np.isin(items.context, part.context)], strict=True
        ):
            assert (rows[s : s + n] == np.arange(global_start, global_start + n)).all()
    if max_bytes == 1:
        assert len(blocks) == 12  # a context a block
    elif max_bytes == 1e12:
        assert len(blocks) == 1
    unit = abx.unit(vectors)
    parts = ((part, abx.angular_unit(unit[rows])) for part, rows in blocks)
    assert abx.abx_of_blocks(parts, max_x_across=3, seed=5) == whole


def test_pair_distances_do_not_depend_on_how_pairs_are_chunked():
    rng = np.random.default_rng(4)
    items, vectors = random_items(rng, n=60, contexts=1)
    pairs = np.stack(np.triu_indices(60, 1), 1)
    distance = abx.angular(vectors)
    whole = abx.pair_distances(items, pairs, distance)
    seen: list[tuple[int, int, int]] = []

    def recorded(rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
        seen.append((len(rows_a), rows_a.shape[1], rows_b.shape[1]))
        return distance(rows_a, rows_b)

    # by pairs, by cells, by gathered frames, one pair at a time
    for chunk, cells, frames in (
        (7, 2**21, 2**17),
        (20_000, 40, 2**17),
        (20_000, 2**21, 30),
        (20_000, 1, 1),
    ):
        seen.clear()
        got = abx.pair_distances(items, pairs, recorded, chunk, cells, frames)
        np.testing.assert_array_equal(got, whole)
        assert sum(p for p, _, _ in seen) == len(pairs)
        for p, la, lb in seen:  # every chunk within every cap, or a single pair
            assert p == 1 or (p <= chunk and p * la * lb <= cells and p * (la + lb) <= frames)
