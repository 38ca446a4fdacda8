"""VQ-CPC: same-speaker negatives, the InfoNCE loss, speaker-grouped batches, training, files."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vqspeech.model.checkpoint import load_model, save_model
from vqspeech.model.vqcpc import VQCPC, VQCPCOutput, info_nce, same_speaker_negatives, tie_rate
from vqspeech.model.vqvae import Encoder, encoder_args
from vqspeech.params import ParamsError, parse_params
from vqspeech.train.crops import SplitData, epoch_batches
from vqspeech.train.loop import TrainingError, train

from .conftest import DEFAULTS, RAW, changed, model_params

CPC = {"context_dim": 8, "prediction_steps": 2, "negatives": 3, "speakers_per_batch": 2}
MODEL = model_params(
    family="vqcpc",
    channels=16,
    res_blocks=1,
    embedding_dim=8,
    speaker_dim=4,
    quantizer={"kmeans_batches": 2, "codebook_size": 8},
    cpc=CPC,
)
CFG = changed(DEFAULTS.train, epochs=2, batch_size=4, crop_frames=16, val_crops=8)


def toy(n_utts: int = 8, frames: int = 60, seed: int = 0, speakers: int = 4) -> SplitData:
    """Utterances whose frames carry a slow, speaker-independent pattern (predictable)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(frames // 2, frames, n_utts)
    t = np.arange(int(lengths.sum()))[:, None]
    x = np.sin(t / np.array([3.0, 5.0, 7.0, 11.0, 13.0, 17.0]))
    x = (x + 0.1 * rng.standard_normal(x.shape)).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return SplitData(x, offsets, np.arange(n_utts) % speakers, [f"u{i}" for i in range(n_utts)])


def test_negatives_come_from_the_same_speaker_at_other_times():
    speaker = torch.tensor([0, 0, 0, 1, 1, 2, -1, -1])
    g = torch.Generator().manual_seed(0)
    crops, times = same_speaker_negatives(speaker, 50, 6, generator=g)
    assert crops.shape == times.shape == (8, 50, 6)
    assert torch.equal(speaker[crops], speaker[:, None, None].expand_as(crops))
    assert set(crops[0].unique().tolist()) == {0, 1, 2}  # every crop of the speaker, its own too
    assert (crops[5] == 5).all()  # a speaker with one crop: its other times
    assert (crops[6] == 6).all() and (crops[7] == 7).all()  # unseen speakers: their own crop
    assert not (times == torch.arange(6)).any()  # never the positive's own position
    assert set(times.unique().tolist()) == set(range(6))


def test_distinct_utterance_batches_draw_each_speakers_crops_from_other_utterances(
    tmp_path: Path,
):
    """`model.cpc.distinct_utterances`: S speakers x U distinct utterances of each, seeded; a
    speaker with fewer than U long utterances is left out, and too few speakers is an error
    naming the keys (in the training loop too)."""
    data = toy(n_utts=24, speakers=4)  # 6 utterances per speaker
    batches = epoch_batches(data, 16, 8, seed=3, epoch=1, speakers_per_batch=2, distinct=True)
    for utt, start in batches:
        groups = utt.reshape(2, 4)  # 2 speakers x 4 crops
        assert all(len(set(g)) == 4 for g in groups)
        assert (start >= 0).all() and (start + 16 <= data.lengths[utt]).all()
    again = epoch_batches(data, 16, 8, seed=3, epoch=1, speakers_per_batch=2, distinct=True)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    # without the option, 4 crops of a speaker's 6 utterances repeat one about 2/3 of the time
    plain = epoch_batches(data, 16, 8, seed=3, epoch=1, speakers_per_batch=2)
    assert any(len(set(g)) < 4 for utt, _ in plain for g in utt.reshape(2, 4))
    match = r"only 0 train speakers have 7 utterances \(train.batch_size / speakers_per_batch\)"
    with pytest.raises(ValueError, match=match):
        epoch_batches(data, 16, 14, 3, 1, speakers_per_batch=2, distinct=True)
    cpc = {**CPC, "distinct_utterances": True, "speakers_per_batch": 1}
    with pytest.raises(TrainingError, match=r"with model\.cpc\.distinct_utterances, but only 0"):
        cfg = CFG.model_copy(update={"batch_size": 8})
        train(
            changed(MODEL, cpc=cpc),
            cfg,
            toy(speakers=2),
            None,
            checkpoint_dir=tmp_path,
            data_fingerprint="fp",
        )


def test_info_nce_rewards_the_right_prediction_and_counts_ties_as_misses():
    g = torch.Generator().manual_seed(0)
    targets = torch.nn.functional.normalize(torch.randn(3, 5, 4, generator=g), dim=-1)
    speaker = torch.tensor([0, 0, 1])
    crops, times = same_speaker_negatives(speaker, 4, 5, generator=g)
    good, acc_good = info_nce(100 * targets, targets, crops, times)
    bad, acc_bad = info_nce(-100 * targets, targets, crops, times)
    assert float(acc_good) == 1.0 and float(acc_bad) == 0.0
    assert float(good) < 0.01 < np.log(5) < float(bad)
    # every target the same vector: the positive cannot be told apart, chance loss, no hit
    flat = torch.ones(3, 5, 4)
    loss, acc = info_nce(flat, flat, crops, times)
    assert float(loss) == pytest.approx(np.log(5)) and float(acc) == 0.0
    # by hand: one crop of two positions, each the other's one negative, scores / sqrt(E = 2)
    q = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    p = torch.tensor([[[3.0, 1.0], [1.0, 1.0]]])
    loss, acc = info_nce(p, q, torch.zeros(1, 1, 2, dtype=torch.long), torch.tensor([[[1, 0]]]))
    pos, neg = np.array([3.0, 2.0]) / np.sqrt(2), np.array([2.0, 1.0]) / np.sqrt(2)
    expected = np.mean(np.log(np.exp(pos) + np.exp(neg)) - pos)
    assert float(loss) == pytest.approx(expected, rel=1e-6) and float(acc) == 1.0


def test_tie_rate_counts_negatives_that_carry_the_positives_code():
    # crop 0 codes 1 1 2 2, crop 1 codes 3 3 3 3; one negative per (crop, position), by hand
    codes = torch.tensor([[1, 1, 2, 2], [3, 3, 3, 3]])
    crops = torch.tensor([[[0, 0, 0, 0]], [[1, 1, 0, 0]]])
    times = torch.tensor([[[1, 0, 3, 0]], [[1, 2, 0, 1]]])
    # crop 0: t0 <- (0,1) code 1 tie; t1 <- (0,0) tie; t2 <- (0,3) tie; t3 <- (0,0) code 1 no
    # crop 1: t0 <- (1,1) tie; t1 <- (1,2) tie; t2 <- (0,0) code 1 no; t3 <- (0,1) no
    assert float(tie_rate(codes, crops, times)) == pytest.approx(5 / 8)
    assert float(tie_rate(torch.arange(8).view(2, 4), crops, times)) == 0.0


def test_speaker_batches_hold_distinct_speakers_equally_and_repeat_per_seed_and_epoch():
    data = toy(n_utts=12, speakers=6)
    batches = epoch_batches(data, 16, 6, seed=3, epoch=1, speakers_per_batch=3)
    assert len(batches) == len(epoch_batches(data, 16, 6, 3, 1))  # as many as ungrouped
    for utt, start in batches:
        spk = data.speakers[utt].reshape(3, 2)  # speaker-major: 3 speakers x 2 crops
        assert (spk == spk[:, :1]).all() and len(set(spk[:, 0])) == 3
        assert (start >= 0).all() and (start + 16 <= data.lengths[utt]).all()
    again = epoch_batches(data, 16, 6, seed=3, epoch=1, speakers_per_batch=3)
    assert all(
        np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        for a, b in zip(batches, again, strict=True)
    )
    other = epoch_batches(data, 16, 6, seed=3, epoch=2, speakers_per_batch=3)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batches, other, strict=True))
    match = "model.cpc.speakers_per_batch is 7, but only 6 train speakers"
    with pytest.raises(ValueError, match=match):
        epoch_batches(data, 16, 7, 3, 1, speakers_per_batch=7)


def test_vqcpc_trains_deterministically_learns_to_predict_and_round_trips(tmp_path: Path):
    data, val = toy(), toy(seed=1)
    cfg = CFG.model_copy(update={"epochs": 20, "lr": 3e-3})
    a = train(MODEL, cfg, data, val, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    b = train(MODEL, cfg, data, val, checkpoint_dir=tmp_path / "b", data_fingerprint="fp")
    assert isinstance(a.model, VQCPC) and a.last == b.last
    assert {"train_cpc", "train_cpc_accuracy", "val_cpc", "val_cpc_accuracy"} <= set(a.last)
    assert 0.0 <= a.last["val_cpc_tie_rate"] <= 1.0 and "train_cpc_tie_rate" in a.last
    assert "val_recon" not in a.last
    # chance is log(1 + negatives) = log 4 (an untrained model scores it); this learns past it
    first = train(
        MODEL,
        cfg.model_copy(update={"epochs": 1}),
        data,
        val,
        checkpoint_dir=tmp_path / "c",
        data_fingerprint="fp",
    )
    assert first.last["val_cpc"] == pytest.approx(np.log(4), abs=0.01)
    assert a.last["val_cpc"] < np.log(4) - 0.2
    assert a.last["val_cpc_accuracy"] > first.last["val_cpc_accuracy"] + 0.1
    x = torch.from_numpy(data.features[None, :32])
    save_model(tmp_path / "model.pt", a.model, {"speakers": ["a", "b", "c", "d"]})
    model, _ = load_model(tmp_path / "model.pt", expect=MODEL)
    assert isinstance(model, VQCPC)
    z0, vq0 = a.model.encode(x)
    z1, vq1 = model.encode(x)
    assert torch.equal(z0, z1) and torch.equal(vq0.codes, vq1.codes)


def test_too_few_speakers_for_a_batch_is_a_training_error(tmp_path: Path):
    cpc = {**CPC, "speakers_per_batch": 4}
    match = "model.cpc.speakers_per_batch is 4, but only 2 train speakers"
    with pytest.raises(TrainingError, match=match):
        train(
            changed(MODEL, cpc=cpc),
            CFG,
            toy(speakers=2),
            None,
            checkpoint_dir=tmp_path,
            data_fingerprint="fp",
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": {"batch_size": 6}}, r"train.batch_size \(6\) must be a multiple of model.cpc"),
        ({"train": {"crop_frames": 15}}, r"gives 7 latents, too few to predict 6 steps ahead"),
        ({"model": {"decoder": "wavenet"}}, "model.family {family} has no decoder"),
    ],
)
@pytest.mark.parametrize("family", ["vqcpc", "cpc"])
def test_contrastive_params_that_cannot_train_are_errors(change: dict, message: str, family: str):
    message = message.format(family=family)
    raw = copy.deepcopy(RAW)
    raw["model"]["family"] = family
    for group, values in change.items():
        raw[group].update(values)
    with pytest.raises(ParamsError, match=message) as err:
        parse_params(raw)
    assert "(got {" not in str(err.value)  # the message, not a dump of the whole params
    parse_params({**RAW, "model": {**RAW["model"], "family": "vqcpc"}})  # params.yaml's others


def test_the_causal_encoder_sees_nothing_after_its_own_20_ms():
    """Latent t of the VQ-CPC encoder depends on frames up to 2t + 1 only (the VQ-VAE's centred
    one on frames up to 12 later), and both give T // 2 latents, odd T too."""
    torch.manual_seed(0)
    for causal, last in ((True, 21), (False, 32)):
        enc = Encoder(6, **encoder_args(model_params()), causal=causal)
        assert all(enc(torch.randn(1, t, 6)).shape[1] == t // 2 for t in (15, 16, 41))
        x = torch.randn(1, 60, 6, requires_grad=True)
        enc(x)[0, 10].sum().backward()
        assert int((x.grad[0].abs().sum(1) > 0).nonzero().max()) == last
    enc = VQCPC(MODEL, input_dim=6, n_speakers=4).encoder
    x = torch.randn(1, 40, 6)
    y = x.clone()
    y[0, 22:] += 1.0  # frames from 22 on: latents 0..10 unchanged
    assert torch.equal(enc(x)[0, :11], enc(y)[0, :11]) and not torch.equal(enc(x), enc(y))


def test_step_k_is_scored_against_the_latent_k_ahead():
    """Predictions that are exactly q[t + k] for step k win every time; shifted by one step
    (q[t + k - 1], the present for k = 1) they do not."""
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2, 8, 8, generator=g), dim=-1)
    # K = 2: predictions for 8 - 2 positions; 30 negatives, so the latent a shifted prediction
    # copies is nearly always among them (and scores as high as it can)
    params = changed(MODEL, cpc={**CPC, "negatives": 30})
    model = VQCPC(params, input_dim=6, n_speakers=4)

    def accuracy(shift: int) -> float:
        pred = torch.stack([100 * q[:, k - shift : k - shift + 6] for k in (1, 2)], dim=2)
        vq = SimpleNamespace(quantized=q, codes=torch.arange(16).view(2, 8))
        out = VQCPCOutput(q, vq, q, pred, torch.tensor([0, 0]))
        return float(model.losses(None, out)["cpc_accuracy"])

    torch.manual_seed(0)
    assert accuracy(0) == 1.0 and accuracy(1) < 0.1


def test_validation_leaves_training_unchanged(tmp_path: Path):
    """VQ-CPC's validation draws negatives from a forked, seeded RNG: how many val crops it
    scores (or whether there is a val split) does not move the trained weights."""
    data, val = toy(), toy(seed=1)
    runs = [
        train(
            MODEL,
            CFG.model_copy(update={"val_crops": n}),
            data,
            v,
            checkpoint_dir=tmp_path / str(i),
            data_fingerprint="fp",
        )
        for i, (n, v) in enumerate(((8, val), (4, val), (8, None)))
    ]
    weights = [r.model.state_dict() for r in runs]
    for w in weights[1:]:
        assert all(torch.equal(weights[0][k], w[k]) for k in w)


def test_cpc_learns_without_a_quantizer_and_its_units_are_kmeans_of_its_latents(tmp_path: Path):
    data, val = toy(), toy(seed=1)
    cfg = CFG.model_copy(update={"epochs": 20, "lr": 3e-3})
    model_cfg = changed(MODEL, family="cpc")
    a = train(model_cfg, cfg, data, val, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    b = train(model_cfg, cfg, data, val, checkpoint_dir=tmp_path / "b", data_fingerprint="fp")
    assert a.last == b.last and torch.equal(a.model.quantizer.codebook, b.model.quantizer.codebook)
    assert a.last["val_cpc"] < np.log(4) - 0.2  # chance: log(1 + 3 negatives)
    assert not {"val_perplexity", "train_commitment", "val_cpc_tie_rate"} & set(a.last)
    # the units: k-means of the trained latents, nearer to them than a fresh model's codebook
    x = torch.from_numpy(data.features[None])
    z, vq = a.model.encode(x)
    fresh = VQCPC(model_cfg, input_dim=6, n_speakers=4).quantizer.codebook
    error = (z[0] - a.model.quantizer.codebook[vq.codes[0]]).pow(2).sum(1).mean()
    fresh_error = torch.cdist(z[0], fresh).pow(2).min(1).values.mean()
    assert len(vq.codes.unique()) >= 6 and error < 0.2 * z[0].var(0).sum() < fresh_error
    # a codebook of the loss kind is a parameter: frozen (fitted, never trained; DDP needs every
    # trained parameter to get a gradient)
    loss_kind = VQCPC(changed(model_cfg, quantizer={"kind": "loss"}), input_dim=6, n_speakers=4)
    assert not any(p.requires_grad for p in loss_kind.quantizer.parameters())
    assert all(p.requires_grad for p in loss_kind.encoder.parameters())
    # a finished run found again refits the same units
    c = train(model_cfg, cfg, data, val, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    assert c.resumed_from == 20 and torch.equal(
        c.model.quantizer.codebook, a.model.quantizer.codebook
    )


def test_negatives_from_the_utterance_are_other_times_of_the_positives_own_crop():
    """With `negatives_from: utterance` every negative sits in the positive's own crop: targets
    that differ only between crops (a per-utterance channel) are then no help, and a prediction
    that only knows its crop scores chance."""
    g = torch.Generator().manual_seed(0)
    crop_code = torch.nn.functional.normalize(torch.randn(4, 1, 8, generator=g), dim=-1)
    q = crop_code.expand(4, 8, 8).contiguous()  # every latent of a crop the same vector
    params = changed(MODEL, cpc={**CPC, "negatives": 5, "negatives_from": "utterance"})
    model = VQCPC(params, input_dim=6, n_speakers=4)
    pred = torch.stack([100 * q[:, :6], 100 * q[:, :6]], dim=2)  # knows the crop, not the time
    vq = SimpleNamespace(quantized=q, codes=torch.arange(4)[:, None].expand(4, 8))
    speakers = torch.tensor([0, 0, 0, 0])  # one speaker: from the speaker, other crops count
    out = VQCPCOutput(q, vq, q, pred, speakers)
    torch.manual_seed(0)
    terms = model.losses(None, out)
    assert float(terms["cpc"]) == pytest.approx(np.log(6), abs=1e-4)  # every negative a tie
    assert float(terms["cpc_tie_rate"]) == 1.0 and float(terms["cpc_accuracy"]) == 0.0
    speaker_params = changed(params, cpc={"negatives_from": "speaker"})
    by_speaker = VQCPC(speaker_params, input_dim=6, n_speakers=4)
    torch.manual_seed(0)
    assert float(by_speaker.losses(None, out)["cpc"]) < 0.5 * np.log(6)  # other crops: easy
