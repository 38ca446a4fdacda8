"""VQ-CPC: same-speaker negatives, the InfoNCE loss, speaker-grouped batches, training, files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vqspeech.model.checkpoint import load_model, save_model
from vqspeech.model.vqcpc import VQCPC, info_nce, same_speaker_negatives
from vqspeech.params import ParamsError, TrainParams, parse_params
from vqspeech.train.crops import SplitData, epoch_batches
from vqspeech.train.loop import TrainingError, train

from .conftest import model_params

CPC = {"context_dim": 8, "prediction_steps": 2, "negatives": 3, "speakers_per_batch": 2}
MODEL = model_params(family="vqcpc", channels=16, res_blocks=1, embedding_dim=8, speaker_dim=4,
                     quantizer={"codebook_size": 8}, cpc=CPC)  # fmt: skip
CFG = TrainParams(epochs=2, batch_size=4, crop_frames=16, kmeans_batches=2, val_crops=8)


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


def test_speaker_batches_hold_distinct_speakers_equally_and_repeat_per_seed_and_epoch():
    data = toy(n_utts=12, speakers=6)
    batches = epoch_batches(data, 16, 6, seed=3, epoch=1, speakers_per_batch=3)
    assert len(batches) == len(epoch_batches(data, 16, 6, 3, 1))  # as many as ungrouped
    for utt, start in batches:
        spk = data.speakers[utt].reshape(3, 2)  # speaker-major: 3 speakers x 2 crops
        assert (spk == spk[:, :1]).all() and len(set(spk[:, 0])) == 3
        assert (start >= 0).all() and (start + 16 <= data.lengths[utt]).all()
    again = epoch_batches(data, 16, 6, seed=3, epoch=1, speakers_per_batch=3)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
               for a, b in zip(batches, again, strict=True))  # fmt: skip
    other = epoch_batches(data, 16, 6, seed=3, epoch=2, speakers_per_batch=3)
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batches, other, strict=True))
    with pytest.raises(ValueError, match="7 speakers per batch, but only 6 speakers"):
        epoch_batches(data, 16, 7, 3, 1, speakers_per_batch=7)


def test_vqcpc_trains_deterministically_learns_to_predict_and_round_trips(tmp_path: Path):
    data, val = toy(), toy(seed=1)
    cfg = CFG.model_copy(update={"epochs": 20, "lr": 3e-3})
    a = train(MODEL, cfg, data, val, tmp_path / "a", "fp")
    b = train(MODEL, cfg, data, val, tmp_path / "b", "fp")
    assert isinstance(a.model, VQCPC) and a.last == b.last
    assert {"train_cpc", "train_cpc_accuracy", "val_cpc", "val_cpc_accuracy"} <= set(a.last)
    assert "val_recon" not in a.last
    # chance is log(1 + negatives) = log 4 (an untrained model scores it); this learns past it
    first = train(MODEL, cfg.model_copy(update={"epochs": 1}), data, val, tmp_path / "c", "fp")
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
    with pytest.raises(TrainingError, match="4 speakers per batch, but only 2 speakers"):
        train(model_params(**{**MODEL.model_dump(), "cpc": cpc}), CFG, toy(speakers=2), None,
              tmp_path, "fp")  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"train": {"batch_size": 6}}, r"train.batch_size \(6\) must be a multiple of model.cpc"),
        ({"train": {"crop_frames": 15}}, r"gives 7 latents, too few to predict 6 steps ahead"),
        ({"model": {"decoder": "wavenet"}}, "model.family vqcpc has no decoder"),
    ],
)
def test_vqcpc_params_that_cannot_train_are_errors(change: dict, message: str):
    raw: dict = {"data": {"corpus": "builtin"}, "model": {"family": "vqcpc"}}
    for group, values in change.items():
        raw.setdefault(group, {}).update(values)
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)
    parse_params({"data": {"corpus": "builtin"}, "model": {"family": "vqcpc"}})  # the defaults
