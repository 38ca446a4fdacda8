"""Mel-cepstral distortion and the speaker classifier on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.random import default_rng as rng

from vqspeech.features.shards import Utterance
from vqspeech.synthesis.measures import SpeakerClassifier, cepstra, mcd, mel_cepstra


def test_mcd_known_values():
    rng = np.random.default_rng(0)
    c = rng.standard_normal((50, 24))
    assert mcd(c, c) == 0.0
    shifted = c.copy()
    shifted[:, 3] += 0.5  # one coefficient off by 0.5 in every frame
    assert mcd(c, shifted) == pytest.approx(10 / math.log(10) * math.sqrt(2) * 0.5)
    assert mcd(c, shifted[:49]) == pytest.approx(mcd(c[:49], shifted[:49]))  # 1 frame short: ok
    with pytest.raises(ValueError, match="not aligned"):
        mcd(c, c[:40])
    half = c.copy()
    half[25:, 3] += 0.5  # only the second half differs
    speech = np.arange(50) >= 25
    assert mcd(c, half, mask=speech) == pytest.approx(mcd(c, shifted))
    assert mcd(c, half, mask=~speech) == 0.0
    assert mcd(c, half) == pytest.approx(mcd(c, shifted) / 2)
    with pytest.raises(ValueError, match="selects none"):
        mcd(c, half, mask=np.zeros(50, bool))


def test_cepstra_are_the_cosine_series_of_the_log_spectrum():
    k = np.arange(80)
    log_amp = (
        1.7
        + 2 * 0.3 * np.cos(np.pi * 3 * (k + 0.5) / 80)
        - 2 * 0.1 * np.cos(np.pi * 10 * (k + 0.5) / 80)
    )
    c = cepstra(log_amp[None])[0]  # c1..c24: the constant 1.7 is c0, left out
    expected = np.zeros(24)
    expected[2], expected[9] = 0.3, -0.1
    np.testing.assert_allclose(c, expected, atol=1e-12)


def test_mel_cepstra_of_the_same_audio_are_identical_and_louder_is_c0_only():
    rng = np.random.default_rng(1)
    audio = rng.standard_normal(16000).astype(np.float32) * 0.1
    a = mel_cepstra(audio)
    assert a.shape == (1 + (16000 - 400) // 160, 24)
    # scaling the signal moves the log-mel spectrum by a constant: c0 only, which is left out
    assert mcd(a, mel_cepstra(audio * 2.0)) == pytest.approx(0.0, abs=1e-3)
    assert mcd(a, mel_cepstra(rng.standard_normal(16000).astype(np.float32))) > 0.1


def test_speaker_classifier_separates_speakers_and_scores_conversions():
    rng = np.random.default_rng(2)
    means = {"a": np.zeros(13), "b": np.full(13, 3.0)}

    def utt(s: str) -> np.ndarray:
        return means[s] + rng.standard_normal((80, 13))

    train = [(utt(s), s) for s in "ab" * 10]
    clf = SpeakerClassifier().fit([u for u, _ in train], [s for _, s in train])
    assert clf.predict([utt("a"), utt("b")]) == ["a", "b"]
    # conversions that reached their target, and ones that did not
    assert clf.target_share([utt("b"), utt("b"), utt("a"), utt("a")], ["b", "b", "b", "b"]) == 0.5
    with pytest.raises(ValueError, match="two speakers"):
        SpeakerClassifier().fit([utt("a")], ["a"])


def _utt(uid: str, speaker: str, n_sil: int, n_speech: int, audio: bool = True):
    from vqspeech.features.shards import Utterance

    n = n_sil + n_speech
    pcm = np.arange(160 * (n - 1) + 400, dtype=np.int16) if audio else None
    phones = ["sil"] * n_sil + ["AH"] * n_speech
    return Utterance(uid, speaker, "test", np.zeros((n, 3), np.float32), phones, 0.0, pcm)


def choose(utts: list[Utterance], count: int, seconds: float, rng: np.random.Generator):
    """As the synthesize stage chooses: `count` ids (seeded), then their excerpts."""
    from vqspeech.synthesis.excerpts import choose_ids, excerpts

    by_id = {u.utterance_id: u for u in utts}
    chosen = [by_id[i] for i in choose_ids(list(by_id), count, rng)]
    return (chosen, *excerpts(chosen, seconds))


def test_choose_starts_excerpts_just_before_speech():
    utts = [_utt("b", "s", 40, 200), _utt("a", "s", 0, 300), _utt("c", "s", 100, 60)]
    chosen, starts, n = choose(utts, 3, 2.0, np.random.default_rng(0))
    assert [u.utterance_id for u in chosen] == ["a", "b", "c"]
    assert starts == [0, 40 // 2 - 5, 100 // 2 - 5]  # 0.1 s (5 latents) before the first phone
    assert n == (160 // 2) - 45  # the shortest after its start: c has 80 latents from 45
    _, starts, n = choose(utts[:2], 2, 0.1, np.random.default_rng(0))
    assert n == 5 and starts == [0, 20 - 1]  # short excerpts: a quarter of it before speech
    with pytest.raises(ValueError, match="4 utterances to synthesize but only 3"):
        choose(utts, 4, 2.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"x: no audio in the feature shards"):
        choose([_utt("x", "s", 0, 50, audio=False)], 1, 2.0, np.random.default_rng(0))


def classifier_split(utts: list[Utterance], per: int, holdout: float, n: int, rng):
    from vqspeech.synthesis.measures import classifier_excerpts

    by_id = {u.utterance_id: u for u in utts}
    read = lambda ids: {i: by_id[i] for i in ids}  # noqa: E731
    return classifier_excerpts({i: u.speaker for i, u in by_id.items()}, read, per, holdout, n, rng)


def test_classifier_excerpts_cut_to_length_and_hold_out_per_speaker():
    from vqspeech.synthesis.excerpts import targets

    utts = [_utt(f"{s}{i}", s, 0, 50) for s in ("p", "q") for i in range(8)]
    fit, test = classifier_split(utts, 4, 0.25, 1000, np.random.default_rng(0))
    assert [s for s, _ in fit] == ["p"] * 3 + ["q"] * 3 and [s for s, _ in test] == ["p", "q"]
    assert all(len(a) == 1000 and a.dtype == np.float32 for _, a in fit + test)
    # a speaker with one utterance: the classifier is skipped (its metrics null), not an error
    assert classifier_split([*utts, _utt("r0", "r", 0, 50)], 4, 0.25, 100, rng(0)) == ([], [])
    with pytest.raises(ValueError, match="speaker p: 1 utterance"):
        classifier_split(utts, 1, 0.25, 100, rng(0))  # one picked: nothing to hold out
    goals = targets(["p", "q", "r"], 4, 2, np.random.default_rng(0))
    assert len(goals) == 4 and all(len(set(g)) == 2 and set(g) <= {"p", "q", "r"} for g in goals)
    with pytest.raises(ValueError, match="4 conversion targets but 3 train speakers"):
        targets(["p", "q", "r"], 1, 4, np.random.default_rng(0))


def test_the_models_wavenet_is_scored_whole_as_one_more_system():
    """`resynthesis.wavenet`: each scored utterance whole, from its own codes, as the mean
    speaker and as its targets, as long as the original (so `score` scores it frame by frame
    as it scores the unit systems), seeded."""
    import torch

    from vqspeech.features.stats import Normalizer
    from vqspeech.synthesis import resynthesis

    from .conftest import model_params, vqvae

    wavenet = {"residual_channels": 4, "skip_channels": 4, "layers_per_stack": 2, "stacks": 1}
    params = model_params(
        channels=8, res_blocks=1, embedding_dim=4, speaker_dim=2, decoder="wavenet",
        wavenet=wavenet, quantizer={"codebook_size": 4},
    )  # fmt: skip
    torch.manual_seed(0)
    model = vqvae(params, input_dim=3, n_speakers=2).eval()

    def utt(uid: str, frames: int) -> Utterance:
        samples = (frames - 1) * 160 + 400 + 70  # a tail shorter than a hop, as audio has
        audio = (3000 * rng(frames).standard_normal(samples)).astype(np.int16)
        phones = ["sil"] * 2 + ["aa"] * (frames - 4) + ["sil"] * 2
        return Utterance(uid, "x", "test", rng(1).standard_normal((frames, 3)), phones, 0, audio)

    scored = [utt("x_0", 13), utt("x_1", 9)]  # odd frame counts: a latent short of the audio
    norm = Normalizer(np.zeros(3), np.ones(3), 1)

    class Bar:
        latents = 0

        def update(self, n: int) -> None:
            self.latents += n

    bar = Bar()
    made, facts = resynthesis.wavenet(model, scored, [["a", "b"]], ["a", "b"], norm, 0, bar)
    assert [(v.system, v.utterance_id, v.name, v.target) for v in made] == [
        ("wavenet", "x_0", "reconstruction", None),
        ("wavenet", "x_0", "as_a", "a"),
        ("wavenet", "x_0", "as_b", "b"),
        ("wavenet", "x_1", "reconstruction", None),
    ]
    assert bar.latents == 13 // 2 + 9 // 2
    for v in made:
        u = next(u for u in scored if u.utterance_id == v.utterance_id)
        assert v.audio.dtype == np.float32 and len(v.audio) == len(u.audio)
        assert not v.audio[len(u.features) // 2 * 320 :].any()  # past the last latent: silence
        assert v.audio[: len(u.features) // 2 * 320].any()
    assert facts["rtf"] > 0 and facts["generate_s"] >= 0
    again, _ = resynthesis.wavenet(model, scored, [["a", "b"]], ["a", "b"], norm, 0, Bar())
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(made, again, strict=True))
    originals = [
        resynthesis.Version("original", u.utterance_id, "original", resynthesis.as_float(u))
        for u in scored
    ]
    row = resynthesis.score(originals + made, scored, {}, None, None, None, {"wavenet": facts})
    assert row["wavenet"]["mcd_db"] > 0 and row["wavenet"]["rtf"] == facts["rtf"]
    assert row["wavenet"]["wer"] is None and "conversion_target_share" in row["wavenet"]
