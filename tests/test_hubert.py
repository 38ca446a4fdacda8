"""`model.family: hubert`: masked prediction of k-means classes of the input."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vqspeech.evaluate.heldout import pair_frames
from vqspeech.model.build import build
from vqspeech.model.checkpoint import load_model, save_model
from vqspeech.model.hubert import Hubert, HubertOutput, paired, span_mask
from vqspeech.model.vqvae import summary
from vqspeech.params import ParamsError, parse_params
from vqspeech.train.crops import SplitData
from vqspeech.train.loop import TrainingError, train

from .conftest import DEFAULTS, RAW, changed, model_params

HUBERT = {"labels": 4, "context_dim": 8, "mask_share": 0.5, "mask_span": 2}
MODEL = model_params(
    family="hubert",
    channels=16,
    res_blocks=1,
    embedding_dim=8,
    speaker_dim=4,
    quantizer={"kmeans_batches": 4, "codebook_size": 4},
    hubert=HUBERT,
)
CFG = changed(DEFAULTS.train, epochs=2, batch_size=8, crop_frames=24, val_crops=16)


def phones(n_utts: int = 12, seed: int = 0) -> SplitData:
    """Utterances of four 'phones' (distinct mean vectors held 8 frames, in a repeating order,
    plus noise): the class of a latent's frames is what its neighbours predict."""
    means = 3.0 * np.random.default_rng(100).standard_normal((4, 6))  # the same in every split
    rng = np.random.default_rng(seed)
    rows, offsets = [], [0]
    for _ in range(n_utts):
        order = np.roll(np.arange(4), rng.integers(4))
        seq = np.repeat(np.tile(order, 3), 8)  # 96 frames
        rows.append(means[seq] + 0.3 * rng.standard_normal((len(seq), 6)))
        offsets.append(offsets[-1] + len(seq))
    x = np.concatenate(rows).astype(np.float32)
    return SplitData(x, np.array(offsets), np.arange(n_utts) % 3, [f"u{i}" for i in range(n_utts)])


def test_span_mask_covers_about_its_share_in_whole_spans():
    g = torch.Generator().manual_seed(0)
    mask = span_mask(500, 40, 0.5, 5, generator=g)
    assert mask.shape == (500, 40) and mask.any(dim=1).all()
    spans = round(0.5 * 40 / 5)  # 4 spans of 5 drawn per row: at most 20 masked, fewer on overlap
    assert (mask.sum(1) <= spans * 5).all() and (mask.sum(1) >= 5).all()
    assert 0.35 < mask.float().mean() < 0.5
    # every run of masked positions is a whole number of overlapping spans: at least 5 long
    for row in mask[:50].int():
        edges = torch.diff(F.pad(row, (1, 1))).nonzero().squeeze(1)
        assert ((edges[1::2] - edges[0::2]) >= 5).all()
    g = torch.Generator().manual_seed(0)
    assert torch.equal(span_mask(500, 40, 0.5, 5, generator=g), mask)  # seeded
    assert span_mask(3, 4, 0.01, 4).all()  # at least one span, which fills a short crop
    with pytest.raises(ValueError, match=r"model.hubert.mask_span \(5\) must be 1..4"):
        span_mask(2, 4, 0.5, 5)


def test_labels_are_the_kmeans_class_of_each_latents_paired_frames():
    x = np.random.default_rng(0).standard_normal((2, 11, 6)).astype(np.float32)
    assert np.allclose(paired(torch.from_numpy(x))[1].numpy(), pair_frames(x[1]), atol=1e-6)
    model = Hubert(MODEL, input_dim=6, n_speakers=3)
    data = phones()
    crops = torch.from_numpy(data.features[: 96 * 4].reshape(16, 24, 6))
    assert model.fit_labels(crops, torch.Generator().manual_seed(0)) == 16 * 12
    labels = model.label(crops)  # [16, 12]
    # each 'phone' (8 frames = 4 latents) is one class, and the four phones are four classes
    by_phone = labels.reshape(-1, 4)
    assert (by_phone == by_phone[:, :1]).all() and len(by_phone[:, 0].unique()) == 4
    with pytest.raises(ValueError, match=r"model\.hubert\.labels is 4 but the train crops give 2"):
        model.fit_labels(crops[:1, :4])


def test_the_loss_is_the_cross_entropy_at_masked_positions_only():
    model = Hubert(MODEL, input_dim=6, n_speakers=3)
    logits = torch.tensor([[[4.0, 0, 0, 0], [0, 0, 0, 4.0], [0, 9.0, 0, 0]]])
    labels = torch.tensor([[0, 1, 2]])
    mask = torch.tensor([[True, True, False]])  # the unmasked, badly wrong third is not scored
    out = HubertOutput(torch.zeros(1, 3, 8), logits, mask)
    model.label = lambda x: labels  # the classes of the frames, as fitted
    terms = model.losses(torch.zeros(1, 6, 6), out)
    hit = -np.log(np.exp(4) / (np.exp(4) + 3))  # label 0 at logit 4 among three zeros
    miss = -np.log(1 / (np.exp(4) + 3))  # label 1 at a zero logit, 4 elsewhere
    assert float(terms["hubert"]) == pytest.approx((hit + miss) / 2, rel=1e-5)
    assert float(terms["hubert_accuracy"]) == 0.5


@pytest.mark.parametrize("mask_at", ["input", "latents"])
def test_masked_positions_hide_what_they_cover(mask_at: str):
    """Input masking: frames under a masked span do not reach the model at all. Latent masking:
    the context reads the learned mask vector there, not the encoder's output."""
    model = Hubert(changed(MODEL, hubert={"mask_at": mask_at}), input_dim=6, n_speakers=3)
    model.label_centres.normal_()
    x = torch.randn(2, 24, 6)
    seen: list[torch.Tensor] = []
    model.context.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    torch.manual_seed(5)
    out = model(x, torch.zeros(2, dtype=torch.long))
    frames = out.mask.repeat_interleave(2, dim=1)
    changed_x = torch.where(frames[..., None], torch.randn_like(x), x)
    torch.manual_seed(5)
    again = model(changed_x, torch.zeros(2, dtype=torch.long))
    assert torch.equal(again.mask, out.mask)
    if mask_at == "input":
        assert torch.equal(again.logits, out.logits)
    else:  # the encoder sees the frames (its neighbours' latents change), the context does not
        assert not torch.equal(again.logits, out.logits)
        masked = seen[0][out.mask]
        assert torch.equal(masked, model.mask_embedding.expand_as(masked))


def test_hubert_learns_the_classes_deterministically_and_its_units_are_kmeans_of_its_latents(
    tmp_path: Path,
):
    data, val = phones(), phones(seed=1)
    cfg = CFG.model_copy(update={"epochs": 15, "lr": 3e-3})
    a = train(MODEL, cfg, data, val, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    b = train(MODEL, cfg, data, val, checkpoint_dir=tmp_path / "b", data_fingerprint="fp")
    assert isinstance(a.model, Hubert) and a.last == b.last
    assert torch.equal(a.model.quantizer.codebook, b.model.quantizer.codebook)
    assert {"train_hubert", "val_hubert", "val_hubert_accuracy"} <= set(a.last)
    assert not {"val_perplexity", "train_commitment", "val_recon"} & set(a.last)
    # chance is log 4 over four balanced classes; a masked span of 2 latents inside a phone of
    # 4 is predicted from the phone's unmasked neighbours and the order of the phones
    assert a.last["val_hubert"] < 0.5 * np.log(4) and a.last["val_hubert_accuracy"] > 0.8
    # the units: k-means of the trained latents, nearer to them than a fresh model's codebook
    x = torch.from_numpy(data.features[None])
    z, vq = a.model.encode(x)
    fresh = Hubert(MODEL, input_dim=6, n_speakers=3).quantizer.codebook
    error = (z[0] - a.model.quantizer.codebook[vq.codes[0]]).pow(2).sum(1).mean()
    fresh_error = torch.cdist(z[0], fresh).pow(2).min(1).values.mean()
    assert len(vq.codes.unique()) == 4 and error < 0.5 * z[0].var(0).sum() < fresh_error
    # the labels are fixed for the run: a finished run found again keeps them and its units
    c = train(MODEL, cfg, data, val, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    assert c.resumed_from == 15
    assert torch.equal(c.model.label_centres, a.model.label_centres)
    assert torch.equal(c.model.quantizer.codebook, a.model.quantizer.codebook)
    # the model file round-trips, labels' centres and units included
    save_model(tmp_path / "model.pt", a.model, {"speakers": ["a", "b", "c"]})
    model, _ = load_model(tmp_path / "model.pt", expect=MODEL)
    assert isinstance(model, Hubert) and torch.equal(model.label_centres, a.model.label_centres)
    assert torch.equal(model.encode(x)[1].codes, vq.codes)
    assert not any(p.requires_grad for p in a.model.quantizer.parameters())
    text = summary(build(MODEL, input_dim=6, n_speakers=3))
    assert "HuBERT: bidirectional LSTM context 8 per direction" in text
    assert "predicts 4 k-means classes" in text


def test_hubert_params_that_cannot_train_are_errors(tmp_path: Path):
    raw = copy.deepcopy(RAW)
    raw["model"]["family"] = "hubert"
    raw["model"]["hubert"]["mask_span"] = 30
    with pytest.raises(ParamsError, match=r"model.hubert.mask_span \(30\) is longer than a crop"):
        parse_params(raw)
    raw["model"]["decoder"] = "wavenet"
    raw["model"]["hubert"]["mask_span"] = 5
    with pytest.raises(ParamsError, match=r"model\.family hubert has no decoder"):
        parse_params(raw)
    # more classes or units than k-means sees latents: named before anything runs (15,360 =
    # 20 batches x 32 crops x 24 latents), not when the units are fitted after training
    raw["model"]["decoder"] = "deconv"
    raw["model"]["hubert"]["labels"] = 20000
    with pytest.raises(
        ParamsError, match=r"model\.hubert\.labels is 20000, but k-means sees 15360"
    ):
        parse_params(raw)
    raw["model"]["hubert"]["labels"] = 100
    raw["model"]["quantizer"]["codebook_size"] = 16000
    with pytest.raises(ParamsError, match=r"model\.quantizer\.codebook_size is 16000, but"):
        parse_params(raw)
    # more label classes than the first crops have latents: named at the start of training
    many = changed(MODEL, hubert={"labels": 500})
    with pytest.raises(TrainingError, match=r"model\.hubert\.labels is 500 but the train crops"):
        train(many, CFG, phones(), None, checkpoint_dir=tmp_path, data_fingerprint="fp")
