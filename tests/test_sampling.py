"""Bottom-k samples: the same rows whatever the order the blocks come in, uniform, bounded."""

from __future__ import annotations

import numpy as np
import pytest

from vqspeech.evaluate.sampling import BottomK


def blocks(n: int = 60, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out, first = [], 0
    for i in range(n):
        size = int(rng.integers(1, 40))
        out.append((f"utt{i}", np.arange(first, first + size)[:, None]))
        first += size
    return out


def sample(items: list[tuple[str, np.ndarray]], count: int, seed: int = 7) -> np.ndarray:
    s = BottomK(count, seed)
    for name, rows in items:
        s.add(name, rows)
    return s.result()


def test_the_same_rows_whatever_the_order_of_the_blocks():
    items = blocks()
    a = sample(items, 100)
    b = sample(items[::-1], 100)
    shuffled = [items[i] for i in np.random.default_rng(1).permutation(len(items))]
    c = sample(shuffled, 100)
    assert len(a) == 100 and len(np.unique(a)) == 100  # without replacement
    assert set(a[:, 0]) == set(b[:, 0]) == set(c[:, 0])
    assert (np.diff(a[:, 0]) > 0).all()  # in the order the rows came
    assert set(sample(items, 100, seed=8)[:, 0]) != set(a[:, 0])


def test_a_stream_within_the_count_is_kept_whole_in_order():
    items = blocks(5)
    total = sum(len(r) for _, r in items)
    np.testing.assert_array_equal(sample(items, total)[:, 0], np.arange(total))
    np.testing.assert_array_equal(sample(items, total + 50)[:, 0], np.arange(total))


def test_rows_are_drawn_uniformly():
    items = blocks(200)
    total = sum(len(r) for _, r in items)
    hits = np.zeros(total)
    for seed in range(300):
        hits[sample(items, total // 4, seed)[:, 0]] += 1
    share = hits / 300  # each row kept a quarter of the time
    assert abs(share.mean() - 0.25) < 0.01 and share.std() < 0.04
    late = share[total // 2 :].mean()  # no bias towards early or late blocks
    assert abs(late - share[: total // 2].mean()) < 0.01


def test_empty_stream_and_empty_sample_are_errors():
    with pytest.raises(ValueError, match="empty stream"):
        BottomK(3, 0).result()
    with pytest.raises(ValueError, match="a sample of 0 rows"):
        BottomK(0, 0)
