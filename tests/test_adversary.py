"""`model.adversary`: a speaker classifier on the VQ-VAE's latents through a gradient reversal."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from vqspeech.model.build import build
from vqspeech.model.vqvae import SpeakerAdversary, adversary_terms, reverse_gradient, summary
from vqspeech.params import ParamsError, parse_params
from vqspeech.train.crops import SplitData
from vqspeech.train.loop import train

from .conftest import DEFAULTS, RAW, changed, model_params

MODEL = model_params(
    channels=16,
    res_blocks=1,
    embedding_dim=8,
    speaker_dim=4,
    quantizer={"kmeans_batches": 2, "codebook_size": 8},
    adversary={"weight": 1.0, "ramp_steps": 4, "hidden": 16},
)
CFG = changed(DEFAULTS.train, epochs=2, batch_size=4, crop_frames=16, val_crops=8)


def test_the_reversal_passes_values_and_turns_gradients_around():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.equal(x.grad, torch.tensor([-0.5, -1.0, -1.5]))


def test_the_weight_ramps_up_over_training_steps_only():
    adversary = SpeakerAdversary(4, 8, 3, weight=2.0, ramp=4)
    z = torch.randn(2, 5, 4, requires_grad=True)
    scales = []
    for _ in range(6):
        scales.append(adversary.scale())
        adversary(z)
    assert scales == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0] and int(adversary.steps) == 6
    adversary.eval()
    adversary(z)  # validation counts no step
    assert int(adversary.steps) == 6
    assert SpeakerAdversary(4, 8, 3, weight=2.0, ramp=0).scale() == 2.0


def test_held_out_speakers_have_no_class_in_the_adversary_terms():
    logits = torch.tensor([[[5.0, 0, 0], [0, 5.0, 0]], [[9.0, 0, 0], [9.0, 0, 0]]])
    terms = adversary_terms(logits, torch.tensor([0, -1]))  # the second crop is held out
    assert float(terms["speaker_adversary_accuracy"]) == 0.5
    expected = (-np.log(np.exp(5) / (np.exp(5) + 2)) - np.log(1 / (np.exp(5) + 2))) / 2
    assert float(terms["speaker_adversary"]) == pytest.approx(expected, rel=1e-5)
    assert adversary_terms(logits, torch.tensor([-1, -1])) == {}


def speakers_toy(n_utts: int = 16, seed: int = 0) -> SplitData:
    """Four speakers, each a strong constant offset on a shared slow pattern."""
    rng = np.random.default_rng(seed)
    offsets = 2.0 * np.random.default_rng(7).standard_normal((4, 6))
    lengths = rng.integers(40, 60, n_utts)
    t = np.arange(int(lengths.sum()))[:, None]
    x = np.sin(t / np.array([3.0, 5.0, 7.0, 11.0, 13.0, 17.0]))
    speaker = np.arange(n_utts) % 4
    x = x + offsets[np.repeat(speaker, lengths)] + 0.1 * rng.standard_normal(x.shape)
    utts = [f"u{i}" for i in range(n_utts)]
    return SplitData(x.astype(np.float32), np.concatenate([[0], np.cumsum(lengths)]), speaker, utts)


def test_the_encoder_gets_the_adversarys_gradient_reversed_and_the_classifier_its_own():
    model = build(
        changed(MODEL, adversary={"ramp_steps": 0, "weight": 0.7}), input_dim=6, n_speakers=4
    )
    x, speaker = torch.randn(3, 16, 6), torch.tensor([0, 2, 3])
    out = model(x, speaker)
    terms = model.losses(x, out)
    encoder, classifier = list(model.encoder.parameters()), list(model.adversary.parameters())
    total = torch.autograd.grad(terms["recon_adversary"], encoder + classifier, retain_graph=True)
    recon = torch.autograd.grad(terms["recon"], encoder, retain_graph=True)
    # the same classifier on the same latents without the reversal
    plain = adversary_terms(model.adversary.classify(out.latents), speaker)["speaker_adversary"]
    ce = torch.autograd.grad(plain, encoder + classifier)
    n = len(encoder)
    for t, r, c in zip(total[:n], recon, ce[:n], strict=True):
        assert torch.allclose(t, r - 0.7 * c, atol=1e-6)
    for t, c in zip(total[n:], ce[n:], strict=True):  # the classifier learns as any classifier
        assert torch.allclose(t, c, atol=1e-6)


def test_the_adversary_trains_deterministically_and_resumes_counting_its_steps(tmp_path: Path):
    data, val = speakers_toy(), speakers_toy(seed=1)
    cfg = CFG.model_copy(update={"epochs": 4, "lr": 3e-3})
    a = train(MODEL, cfg, data, val, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    b = train(MODEL, cfg, data, val, checkpoint_dir=tmp_path / "b", data_fingerprint="fp")
    assert a.last == b.last
    assert {"train_recon_adversary", "train_speaker_adversary", "train_recon"} <= set(a.last)
    assert "train_speaker_adversary_accuracy" in a.last
    # the val speakers are as the train ones here (ids 0..3): scored too
    assert "val_speaker_adversary" in a.last
    assert int(a.model.adversary.steps) == a.steps
    plain = changed(MODEL, adversary={"weight": 0.0})
    p = train(plain, cfg, data, val, checkpoint_dir=tmp_path / "p", data_fingerprint="fp")
    assert p.model.adversary is None and "train_speaker_adversary" not in p.last
    assert not any(k.startswith("adversary.") for k in p.model.state_dict())
    # a run found again resumes with its step count (the ramp goes on where it stopped)
    longer = cfg.model_copy(update={"epochs": 6})
    c = train(MODEL, longer, data, val, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    assert c.resumed_from == 4 and int(c.model.adversary.steps) == c.steps > a.steps
    text = summary(build(MODEL, input_dim=6, n_speakers=4))
    assert "speaker adversary: 16-unit classifier of 4 speakers" in text


def test_only_a_vqvae_takes_the_adversary():
    raw = copy.deepcopy(RAW)
    raw["model"]["family"] = "cpc"
    raw["model"]["adversary"]["weight"] = 0.5
    with pytest.raises(ParamsError, match=r"model\.adversary\.weight is 0\.5: .* not cpc's"):
        parse_params(raw)
