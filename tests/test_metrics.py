"""Clustering and boundary metrics against answers known in advance."""

from __future__ import annotations

import numpy as np
import pytest

from vqspeech.evaluate.metrics import (
    Contingency,
    boundary_hits,
    boundary_scores,
    mean_run_length,
    scores,
    speech_mask,
)

PERFECT = (
    "ari",
    "ami",
    "ami_max",
    "nmi",
    "nmi_geometric",
    "homogeneity",
    "completeness",
    "v_measure",
    "pnmi",
    "phone_purity",
    "cluster_purity",
    "one_to_one",
)


def utterances(n: int = 40, seed: int = 0) -> list[np.ndarray]:
    """Phone sequences at 20 ms: runs of 2-8 frames of random phones."""
    rng = np.random.default_rng(seed)
    inventory = np.array(["sil", "AA", "B", "K", "S", "IY", "T", "N", "ZH"])
    seqs = []
    for _ in range(n):
        runs = [(inventory[rng.integers(len(inventory))], rng.integers(2, 9)) for _ in range(25)]
        seqs.append(np.concatenate([[p] * r for p, r in runs]))
    return seqs


def as_codes(phones: np.ndarray, mapping: dict[str, int]) -> np.ndarray:
    return np.array([mapping[p] for p in phones])


def test_codes_identical_to_phones_score_one():
    seqs = utterances()
    phones = np.concatenate(seqs)
    ids = {p: i for i, p in enumerate(sorted(set(phones)))}
    s = scores(phones, as_codes(phones, ids))
    for k in PERFECT:
        assert s[k] == pytest.approx(1.0), k
    codes = [as_codes(p, ids) for p in seqs]
    b = boundary_scores(seqs, codes, tolerance=0)
    assert b == {"boundary_precision": 1.0, "boundary_recall": 1.0, "boundary_f1": 1.0}


def test_a_relabelled_copy_scores_the_same():
    phones = np.concatenate(utterances())
    names = sorted(set(phones))
    rng = np.random.default_rng(3)
    perm = {p: int(c) for p, c in zip(names, rng.permutation(100)[: len(names)], strict=True)}
    s = scores(phones, as_codes(phones, perm))
    for k in PERFECT:
        assert s[k] == pytest.approx(1.0), k


def test_random_codes_score_about_zero():
    phones = np.concatenate(utterances(200))
    codes = np.random.default_rng(1).integers(0, 50, len(phones))
    s = scores(phones, codes)
    assert abs(s["ari"]) < 0.005
    assert abs(s["ami"]) < 0.005
    assert s["pnmi"] < 0.02
    assert s["codes_used"] == 50
    assert s["code_perplexity"] == pytest.approx(50, rel=0.01)
    assert s["bitrate"] == pytest.approx(50 * np.log2(50), rel=0.01)


def test_a_one_frame_shift_lowers_the_scores():
    seqs = utterances()
    ids = {p: i for i, p in enumerate(sorted(set(np.concatenate(seqs))))}
    shifted = [np.roll(as_codes(p, ids), 1) for p in seqs]
    s = scores(np.concatenate(seqs), np.concatenate(shifted))
    assert s["nmi"] < 0.9 and s["ari"] < 0.9 and s["one_to_one"] < 0.9
    assert boundary_scores(seqs, shifted, tolerance=0)["boundary_f1"] < 0.2
    assert boundary_scores(seqs, shifted, tolerance=1)["boundary_f1"] > 0.9  # within 20 ms


def test_hand_computed_table():
    phones = np.array(["a", "a", "b", "b", "b", "c"])
    codes = np.array([0, 0, 0, 1, 1, 1])
    t = Contingency.of(phones, codes)
    assert t.counts.tolist() == [[2, 0], [1, 2], [0, 1]]
    assert t.phone_purity() == pytest.approx(4 / 6)  # code 0 -> a (2), code 1 -> b (2)
    assert t.cluster_purity() == pytest.approx(5 / 6)  # a -> 0 (2), b -> 1 (2), c -> 1 (1)
    assert t.one_to_one() == pytest.approx(4 / 6)  # a <-> 0, b <-> 1, c unmatched
    p = np.array([[2, 0], [1, 2], [0, 1]]) / 6
    px, py = p.sum(1), p.sum(0)
    mi = sum(
        p[i, j] * np.log(p[i, j] / (px[i] * py[j])) for i in range(3) for j in range(2) if p[i, j]
    )
    assert t.pnmi() == pytest.approx(mi / -(px * np.log(px)).sum())
    s = scores(phones, codes, symbols_per_second=50)
    assert s["code_perplexity"] == pytest.approx(2.0) and s["bitrate"] == pytest.approx(50.0)


def test_one_to_one_is_at_most_purity_when_codes_outnumber_phones():
    phones = np.concatenate(utterances())
    codes = np.random.default_rng(2).integers(0, 3, len(phones)) + 10 * (phones == "AA")
    t = Contingency.of(phones, codes)
    assert t.one_to_one() <= t.phone_purity() + 1e-12


def test_boundaries_by_hand():
    phones = [np.array(list("aabbcc"))]  # boundaries before frames 2 and 4
    codes = [np.array([0, 0, 0, 1, 1, 2])]  # boundaries before frames 3 and 5
    assert boundary_scores(phones, codes, tolerance=0)["boundary_f1"] == 0.0
    one = boundary_scores(phones, codes, tolerance=1)
    assert one == {"boundary_precision": 1.0, "boundary_recall": 1.0, "boundary_f1": 1.0}
    over = boundary_scores(phones, [np.array([0, 1, 0, 1, 0, 1])], tolerance=0)
    assert over["boundary_recall"] == 1.0 and over["boundary_precision"] == pytest.approx(2 / 5)


def test_run_length_speech_mask_and_bad_input():
    assert mean_run_length([np.array([0, 0, 1, 1, 1]), np.array([4])]) == pytest.approx(6 / 3)
    assert speech_mask(np.array(["sil", "AA", "sp", "spn", "T"])).tolist() == [
        False,
        True,
        False,
        False,
        True,
    ]
    with pytest.raises(ValueError, match="equal 1-d label arrays"):
        Contingency.of(np.array(["a"]), np.array([1, 2]))
    with pytest.raises(ValueError, match="no frames"):
        Contingency.of(np.array([]), np.array([]))


def test_speech_only_boundaries_leave_out_the_edges_of_silence():
    phones = np.array(["sil", "sil", "AH", "AH", "T", "T", "sil", "S", "sil"])
    edges_only = np.array([0, 0, 1, 1, 1, 1, 0, 1, 0])  # changes at every silence edge only
    all_frames = boundary_scores([phones], [edges_only], tolerance=0)
    speech = boundary_scores([phones], [edges_only], tolerance=0, speech_only=True)
    assert all_frames["boundary_precision"] == 1.0 and all_frames["boundary_recall"] == 0.8
    # speech-only: the one AH|T boundary is missed and no code change lies inside speech
    assert speech["boundary_recall"] == 0.0 and speech["boundary_precision"] == 0.0
    perfect = boundary_scores([phones], [phones], tolerance=0, speech_only=True)
    assert perfect["boundary_f1"] == 1.0


def reference_boundary_scores(
    phone_seqs: list[np.ndarray],
    code_seqs: list[np.ndarray],
    tolerance: int,
    speech_only: bool = False,
) -> dict[str, float]:
    """The definition `boundary_scores` had before it was made linear: every (pred, true) pair
    within the tolerance, sorted by (distance, pred index, true index), matched greedily."""
    hits = n_pred = n_true = 0
    for phones, codes in zip(phone_seqs, code_seqs, strict=True):
        true = np.flatnonzero(phones[1:] != phones[:-1]) + 1
        pred = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        if speech_only:
            speech = speech_mask(phones)
            true = true[speech[true - 1] & speech[true]]
            pred = pred[speech[pred - 1] & speech[pred]]
        n_true += len(true)
        n_pred += len(pred)
        if len(true) == 0 or len(pred) == 0:
            continue
        pairs = sorted(
            (abs(int(p) - int(t)), i, j)
            for i, p in enumerate(pred)
            for j, t in enumerate(true)
            if abs(int(p) - int(t)) <= tolerance
        )
        used_p, used_t = set(), set()
        for _, i, j in pairs:
            if i not in used_p and j not in used_t:
                used_p.add(i)
                used_t.add(j)
        hits += len(used_p)
    precision = hits / n_pred if n_pred else 0.0
    recall = hits / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"boundary_precision": precision, "boundary_recall": recall, "boundary_f1": f1}


def random_pair(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A phone sequence (silences included) and a code sequence of one random utterance: runs
    as short as a frame, dense or sparse, codes independent of the phones or a jittered copy."""
    inventory = np.array(["sil", "sp", "spn", "AA", "B", "K", "S"])
    n = int(rng.integers(1, 60))
    phones = inventory[np.repeat(rng.integers(0, len(inventory), n), rng.integers(1, 5, n))]
    frames = len(phones)
    style = rng.integers(3)
    if style == 0:  # independent runs of 1-3 frames
        m = frames
        codes = np.repeat(rng.integers(0, 3, m), rng.integers(1, 4, m))[:frames]
    elif style == 1:  # every frame its own random code (boundaries almost everywhere)
        codes = rng.integers(0, 2, frames)
    else:  # the phones' own boundaries, each moved by up to 3 frames, some dropped or added
        codes = np.zeros(frames, dtype=np.int64)
        change = np.flatnonzero(phones[1:] != phones[:-1]) + 1
        moved = change + rng.integers(-3, 4, len(change))
        extra = rng.integers(1, max(frames, 2), rng.integers(0, 4))
        cuts = np.concatenate([moved[rng.random(len(moved)) > 0.2], extra])
        cuts = np.unique(cuts[(cuts > 0) & (cuts < frames)])
        codes[cuts] = 1
        codes = np.cumsum(codes)
    return phones, np.asarray(codes[:frames])


@pytest.mark.parametrize("seed", range(12))
def test_boundary_scores_equal_the_quadratic_definition(seed: int):
    rng = np.random.default_rng(seed)
    pairs = [random_pair(rng) for _ in range(60)]
    phone_seqs, code_seqs = [p for p, _ in pairs], [c for _, c in pairs]
    for tolerance in range(4):
        for speech_only in (False, True):
            want = reference_boundary_scores(phone_seqs, code_seqs, tolerance, speech_only)
            assert boundary_scores(phone_seqs, code_seqs, tolerance, speech_only) == want
            for p, c in pairs[:20]:  # one utterance at a time too: its hits alone
                want = reference_boundary_scores([p], [c], tolerance, speech_only)
                assert boundary_scores([p], [c], tolerance, speech_only) == want


def test_boundary_hits_follow_the_greedy_order_on_chains():
    # d = 1 chains: pred 5 takes true 4 (before it) over true 6, so pred 7 takes true 6
    assert boundary_hits(np.array([5, 7]), np.array([4, 6]), 1) == 2
    # pred 3 first takes true 2 (before it); pred 5 then takes true 4
    assert boundary_hits(np.array([3, 5]), np.array([2, 4]), 1) == 2
    # one true boundary between two preds at d = 1: the first pred (2) gets it, not pred 4
    assert boundary_hits(np.array([2, 4]), np.array([3]), 1) == 1
    assert boundary_hits(np.array([2, 4]), np.array([3, 5]), 1) == 2  # pred 4 then takes 5
    # a chain true-pred-true-pred-true (2, 3, 4, 5, 6) pairs (2, 3), (4, 5) and leaves 6; with
    # tolerance 2 nothing else is in reach of it: 2 hits
    assert boundary_hits(np.array([3, 5]), np.array([2, 4, 6]), 2) == 2
    # pred-true-pred at d = 1 (10, 11, 12): pred 10 takes 11; pred 12 then takes 14 at d = 2
    assert boundary_hits(np.array([10, 12]), np.array([11, 14]), 1) == 1
    assert boundary_hits(np.array([10, 12]), np.array([11, 14]), 2) == 2
    assert boundary_hits(np.array([1, 2]), np.array([1, 2]), -1) == 0  # as the definition
    assert boundary_hits(np.array([], dtype=np.int64), np.array([3]), 2) == 0


def test_boundary_scores_of_one_long_utterance_equal_the_definition():
    rng = np.random.default_rng(7)
    phones, codes = zip(*(random_pair(rng) for _ in range(30)), strict=True)
    long_phones, long_codes = np.concatenate(phones), np.concatenate(codes)  # ~ 3000 frames
    for tolerance in (0, 1, 2):
        for speech_only in (False, True):
            want = reference_boundary_scores([long_phones], [long_codes], tolerance, speech_only)
            got = boundary_scores([long_phones], [long_codes], tolerance, speech_only)
            assert got == want
