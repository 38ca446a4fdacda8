"""Clustering and boundary metrics against answers known in advance."""

from __future__ import annotations

import numpy as np
import pytest

from vqspeech.evaluate.metrics import (
    Contingency,
    boundary_scores,
    mean_run_length,
    scores,
    speech_mask,
)

PERFECT = ("ari", "ami", "ami_max", "nmi", "nmi_geometric", "homogeneity", "completeness",
           "v_measure", "pnmi", "phone_purity", "cluster_purity", "one_to_one")  # fmt: skip


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
        False, True, False, False, True,
    ]  # fmt: skip
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
