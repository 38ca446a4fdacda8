import numpy as np
import pytest

from tests.conftest import DEFAULTS
from vqspeech.evaluate import evaluator, probe
from vqspeech.params import changed


def corpus(speakers: int = 4, utterances: int = 6, frames: int = 200, seed: int = 0):
    """Frame labels of a toy held-out split: speaker, utterance and speech flags per row."""
    rng = np.random.default_rng(seed)
    spk = np.repeat([f"s{i}" for i in range(speakers)], utterances * frames)
    utt = np.repeat([f"u{i}" for i in range(speakers * utterances)], frames)
    speech = rng.random(len(spk)) > 0.2
    return spk, utt, speech


P = changed(DEFAULTS.eval.probe, frames=300, fit_share=0.5)


def test_plan_fits_and_scores_on_other_utterances_of_speech_frames():
    spk, utt, speech = corpus()
    plan = probe.plan(spk, utt, speech, P, seed=0)
    assert plan is not None and plan.speakers == 4
    assert (np.diff(plan.rows) > 0).all() and speech[plan.rows].all()
    for s in range(4):
        mine = plan.speaker == s
        fit, score = set(utt[plan.rows[mine & plan.fit]]), set(utt[plan.rows[mine & ~plan.fit]])
        assert fit and score and not fit & score and len(fit) == 3  # half of six utterances
        assert set(spk[plan.rows[mine]]) == {f"s{s}"}
        assert (mine & plan.fit).sum() == 300 and (mine & ~plan.fit).sum() == 300
    assert plan.chance == pytest.approx(0.25)
    again = probe.plan(spk, utt, speech, P, seed=0)
    assert np.array_equal(again.rows, plan.rows)  # seeded


def test_plan_needs_two_speakers_with_two_utterances():
    spk, utt, speech = corpus(speakers=2, utterances=1)
    assert probe.plan(spk, utt, speech, P, seed=0) is None
    spk, utt, speech = corpus(speakers=1, utterances=4)
    assert probe.plan(spk, utt, speech, P, seed=0) is None


def test_probe_is_at_chance_on_speaker_free_vectors_and_reads_a_speaker_offset():
    spk, utt, speech = corpus()
    plan = probe.plan(spk, utt, speech, P, seed=0)
    rng = np.random.default_rng(1)
    free = rng.standard_normal((len(plan.rows), 16))
    assert abs(probe.accuracy(free, plan, seed=0) - plan.chance) < 0.06
    offset = free + 4 * np.eye(16)[plan.speaker]  # a dimension per speaker carries it
    assert probe.accuracy(offset, plan, seed=0) > 0.9
    with pytest.raises(ValueError, match="vectors for"):
        probe.accuracy(free[:-1], plan, seed=0)


def test_add_probe_scores_latents_code_vectors_and_mfcc_beside_chance():
    spk, utt, speech = corpus()
    plan = probe.plan(spk, utt, speech, P, seed=0)
    rng = np.random.default_rng(2)
    n = len(spk)
    book = rng.standard_normal((8, 4))
    speaker_codes = np.array([int(s[1:]) for s in spk])  # codes that are the speaker
    systems = {
        "vqvae": (speaker_codes, "latent", book),
        "kmeans_mfcc": (rng.integers(0, 8, n), "mfcc", book),
        "vqvae_dpdp": (speaker_codes, "latent", book),
        "random": (rng.integers(0, 8, n), None, None),
    }
    vectors = {
        "latent": rng.standard_normal((len(plan.rows), 4)),
        "mfcc": book[speaker_codes][plan.rows],
    }
    result: dict = {"vqvae": {}}
    evaluator.add_probe(result, systems, plan, vectors, seed=0)
    assert set(result) == {"vqvae", "kmeans_mfcc", "mfcc"}  # no DPDP, no codebook-less system
    assert set(result["vqvae"]["speaker_probe"]) == {"chance", "latent", "code"}
    assert result["vqvae"]["speaker_probe"]["code"] == 1.0
    assert result["mfcc"]["speaker_probe"]["frames_20ms"] == 1.0
    assert result["kmeans_mfcc"]["speaker_probe"]["code"] < 0.5
    assert result["vqvae"]["speaker_probe"]["chance"] == pytest.approx(0.25)


def test_a_speaker_without_speech_on_one_side_is_left_out():
    spk, utt, speech = corpus(speakers=3)
    s2 = spk == "s2"
    speech[s2 & np.isin(utt, [f"u{i}" for i in range(12, 18)])] = False  # s2: no speech at all
    plan = probe.plan(spk, utt, speech, P, seed=0)
    assert plan.speakers == 2 and not s2[plan.rows].any()
    assert plan.chance == pytest.approx(0.5)
    # left with one speaker that has speech on both sides: nothing to tell apart
    speech[spk == "s1"] = False
    assert probe.plan(spk, utt, speech, P, seed=0) is None
