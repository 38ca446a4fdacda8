"""DPDP re-segmentation: against exhaustive search, and its two limits."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vqspeech.evaluate import dpdp
from vqspeech.params import DPDPParams

from .conftest import DEFAULTS, changed


def brute_force(d: np.ndarray, penalty: float, max_len: int) -> float:
    """The cheapest cost over every segmentation (segments <= max_len) and code choice."""
    t = len(d)
    best = np.inf
    for cuts in itertools.product([0, 1], repeat=t - 1):
        bounds = [0, *[i + 1 for i, c in enumerate(cuts) if c], t]
        segs = list(itertools.pairwise(bounds))
        if any(e - s > max_len for s, e in segs):
            continue
        best = min(best, sum(d[s:e].sum(0).min() + penalty for s, e in segs))
    return best


def cost(d: np.ndarray, codes: np.ndarray, penalty: float) -> float:
    segments = 1 + int((codes[1:] != codes[:-1]).sum())
    return float(d[np.arange(len(d)), codes].sum() + penalty * segments)


@pytest.mark.parametrize("penalty", [0.0, 0.3, 1.0, 5.0])
def test_segmentation_is_the_cheapest_one(penalty: float):
    rng = np.random.default_rng(1)
    for _ in range(5):
        d = rng.random((9, 4))
        codes = dpdp.segment(d, penalty, max_len=9)  # no cap: equal neighbours would merge
        assert cost(d, codes, penalty) == pytest.approx(brute_force(d, penalty, 9))


def test_no_penalty_keeps_the_nearest_codes_and_a_large_one_merges():
    rng = np.random.default_rng(0)
    vectors, book = rng.standard_normal((30, 3)), rng.standard_normal((5, 3))
    d = dpdp.squared_distances(vectors, book)
    np.testing.assert_allclose(d, ((vectors[:, None] - book[None]) ** 2).sum(-1), atol=1e-12)
    np.testing.assert_array_equal(dpdp.segment(d, 0.0, 20), d.argmin(1))
    merged = dpdp.segment(d[:12], 1e6, 20)
    assert len(set(merged)) == 1  # one segment: max_len 20 holds the 12 frames
    capped = dpdp.segment(d[:12], 1e6, 5)
    assert (np.diff(capped) != 0).sum() <= 2  # 12 frames in at most 3 segments of <= 5


def resegment(ids: np.ndarray, vectors: np.ndarray, book: np.ndarray, p: DPDPParams, seed: int):
    """One system through the evaluate stage's DPDP: `penalties` on the seeded calibration
    utterances, then `resegment` of the whole split (one chunk)."""
    offsets = dpdp.utterance_offsets(ids)
    pick = dpdp.calibration_pick(len(offsets) - 1, seed)
    cal = np.concatenate([vectors[offsets[u] : offsets[u + 1]] for u in pick])
    cal_offsets = np.r_[0, np.cumsum(np.diff(offsets)[pick])]
    (penalty,) = dpdp.penalties({"x": cal}, {"x": book}, cal_offsets, p).values()
    codes = dpdp.resegment([({"x": vectors}, offsets)], {"x": book}, {"x": penalty}, p.max_latents)
    return codes["x"], penalty


def test_the_penalty_is_calibrated_to_a_mean_segment_length_per_system():
    rng = np.random.default_rng(0)
    ids = np.repeat([f"u{i:02d}" for i in range(40)], 50)
    book = rng.standard_normal((16, 4))
    p = changed(DEFAULTS.eval.dpdp, mean_latents=4.0, max_latents=20)
    for scale in (1.0, 30.0):  # the same target whatever the vectors' scale
        vectors = scale * rng.standard_normal((len(ids), 4))
        codes, penalty = resegment(ids, vectors, scale * book, p, seed=0)
        runs = [codes[ids == u] for u in np.unique(ids)]
        assert dpdp.mean_run(runs) == pytest.approx(4.0, rel=0.1)
        assert penalty > 0
    runs = np.repeat(np.arange(10), 6)  # the nearest codes already come in runs of 6
    vectors = book[runs % 16] + 1e-3
    codes, penalty = resegment(np.zeros(60, int), vectors, book, p, seed=0)
    assert penalty == 0.0 and (codes == runs).all()
    short = changed(p, max_latents=5)
    with pytest.raises(ValueError, match="sorted"):
        resegment(np.array(["b"] * 30 + ["a"] * 30), vectors, book, short, seed=0)
