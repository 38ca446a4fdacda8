from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vqspeech.evaluate import kmeans, scoring
from vqspeech.evaluate.heldout import pair_frames
from vqspeech.evaluate.kmeans import fit_kmeans
from vqspeech.evaluate.metrics import Contingency
from vqspeech.evaluate.scoring import score_system
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer

UNIT = Normalizer(np.zeros(6), np.ones(6))


def test_pair_frames_averages_the_two_frames_of_each_latent():
    x = np.arange(14, dtype=np.float32).reshape(7, 2)  # 7 frames -> 3 latents, last frame dropped
    np.testing.assert_array_equal(pair_frames(x), [[1, 2], [5, 6], [9, 10]])


def test_score_system_on_perfect_codes():
    phones = ["sil", "AA", "AA", "B", "B", "B", "sil"] * 3
    ids = {"sil": 4, "AA": 7, "B": 1}
    frames = pd.DataFrame(
        {
            "utterance_id": ["u1"] * 7 + ["u2"] * 7 + ["u3"] * 7,
            "frame": list(range(7)) * 3,
            "phone": phones,
            "code": [ids[p] for p in phones],
        }
    ).sample(frac=1.0, random_state=0)
    s = score_system(frames, tolerance=0, symbols_per_second=40.0)
    q = np.array([6, 6, 9]) / 21  # codes of sil, AA, B
    assert s["all"]["bitrate"] == pytest.approx(40.0 * -(q * np.log2(q)).sum())
    assert s["all"]["nmi"] == pytest.approx(1) and s["all"]["boundary_f1"] == pytest.approx(1)
    assert s["speech"]["one_to_one"] == pytest.approx(1) and s["speech"]["frames"] == 15
    assert s["all"]["mean_run_length"] == pytest.approx(21 / 12)


def test_bitrate_divides_by_the_audio_the_frames_cover():
    # ZeroSpeech 2019: symbols over the real duration, not 50 per second. Two utterances of
    # 100 and 51 frames of 10 ms cover 0.99 + 0.025 and 0.50 + 0.025 s, and have 50 + 25 codes
    utts = [
        Utterance(f"u{i}", "s", "test", np.zeros((n, 6), np.float32), ["sil"] * n)
        for i, n in enumerate((100, 51))
    ]
    rate = scoring.symbol_rate(75, utts)
    assert rate == pytest.approx(75 / (1.015 + 0.525))
    phones = ["AA", "B"] * 40
    frames = pd.DataFrame(
        {"utterance_id": "u", "frame": range(80), "phone": phones, "code": [0, 1, 2, 3] * 20}
    )
    assert score_system(frames, 0, rate)["all"]["bitrate"] == pytest.approx(2 * rate)  # 2 bits
    with pytest.raises(ValueError, match="no audio"):
        scoring.symbol_rate(3, [])


def test_native_features_are_sorted_by_utterance_and_normalized():
    utts = [
        Utterance(u, "s", "test", np.full((n, 6), v, np.float32), ["sil"] * n)
        for u, n, v in (("b", 2, 1.0), ("a", 3, 2.0))
    ]
    keys, x = kmeans.native_features(utts, Normalizer(np.ones(6), np.full(6, 2.0)))
    assert keys["utterance_id"].tolist() == ["a"] * 3 + ["b"] * 2
    assert keys["frame"].tolist() == [0, 1, 2, 0, 1]
    np.testing.assert_allclose(x[:, 0], [0.5, 0.5, 0.5, 0.0, 0.0])


def test_kmeans_baseline_recovers_separable_classes():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 6)) * 10

    def utt(i: int) -> tuple[Utterance, list[int]]:
        classes = np.repeat(rng.integers(0, 4, 30), 2)  # constant over each latent's two frames
        x = (centres[classes] + rng.standard_normal((60, 6)) * 0.1).astype(np.float32)
        return Utterance(f"u{i}", "s", "train", x, ["sil"] * 60), classes[::2].tolist()

    data = [utt(i) for i in range(20)]
    km = fit_kmeans([u for u, _ in data], UNIT, 4, seed=0)
    keys, paired = kmeans.paired_features([u for u, _ in data], UNIT)  # as evaluate pairs
    codes = km.predict(paired)  # and predicts, a shard at a time
    truth = [c for _, cs in data for c in cs]
    assert len(codes) == 20 * 30 and keys["frame"].max() == 29
    table = Contingency.of(np.array(truth).astype(str), codes)
    assert table.phone_purity() == pytest.approx(1.0)


def test_code_perplexity_is_two_to_the_entropy_in_bits():
    assert kmeans.code_perplexity(np.array([3, 1, 2, 0] * 5)) == pytest.approx(4.0)
    h = -(1 / 3 * np.log2(1 / 3) + 2 / 3 * np.log2(2 / 3))
    assert kmeans.code_perplexity(np.array([7, 7, 9, 9, 9, 9])) == pytest.approx(2.0**h)


def test_matched_kmeans_finds_the_k_of_the_target_perplexity():
    rng = np.random.default_rng(0)
    train, held = rng.standard_normal((3000, 2)), rng.standard_normal((1000, 2))
    km8 = kmeans.kmeans(train, 8, seed=0)
    p8 = kmeans.code_perplexity(km8.predict(held))
    # a target the 8-code fit already meets: no refit, the same fit
    calls = []

    def predict(fit):
        calls.append(fit.n_clusters)
        return fit.predict(held)

    same, tried, codes = kmeans.matched_kmeans(km8, train, predict, p8, seed=0)
    assert same is km8 and tried == {8: p8} and calls == [8]
    np.testing.assert_array_equal(codes, km8.predict(held))
    # a target of about 16 codes' perplexity: K' moves up and lands closer than K = 8
    target = kmeans.code_perplexity(kmeans.kmeans(train, 16, seed=0).predict(held))
    fit, tried, codes = kmeans.matched_kmeans(km8, train, predict, target, seed=0)
    assert 8 in tried and len(tried) >= 2 and fit.n_clusters > 8
    assert abs(tried[fit.n_clusters] - target) == min(abs(p - target) for p in tried.values())
    assert abs(tried[fit.n_clusters] - target) < 0.1 * target
    np.testing.assert_array_equal(codes, fit.predict(held))  # the codes of the fit returned
    assert kmeans.code_perplexity(fit.predict(held)) == pytest.approx(tried[fit.n_clusters])
