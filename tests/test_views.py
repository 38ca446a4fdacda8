"""`train.views`: renditions of the train utterances, frame-aligned with the originals."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from vqspeech.features.stats import Normalizer
from vqspeech.params import ParamsError, parse_params
from vqspeech.train import loop
from vqspeech.train.crops import SplitData
from vqspeech.train.stream import CropBatch, InMemory, Plan, gather
from vqspeech.train.views import add_views, warp_matrix

from .conftest import DEFAULTS, RAW, changed
from .test_targets import MFCC, shard_split

FEATURES = DEFAULTS.features  # mfcc39, pre-emphasis 0.97: what shard_split extracts


def test_the_warp_moves_a_bins_power_to_alpha_times_its_frequency():
    assert np.array_equal(warp_matrix(1.0, 257), np.eye(257))
    power = np.zeros(257)
    power[100] = 1.0
    assert int(np.argmax(power @ warp_matrix(1.1, 257).T)) == 110
    assert int(np.argmax(power @ warp_matrix(0.9, 257).T)) == 90
    # alpha < 1: the top bins would read beyond the last one, and are silent; alpha > 1: the
    # top of the spectrum is never read
    assert (warp_matrix(0.8, 257)[206:].sum(axis=1) == 0).all()
    assert np.allclose(warp_matrix(0.8, 257)[:205].sum(axis=1), 1.0)
    assert warp_matrix(1.2, 257)[:, 215:].sum() == 0


def test_a_warped_view_moves_a_tone_up_by_alpha_and_keeps_a_flat_spectrums_level():
    from vqspeech.features.acoustic import FeatureConfig, extract
    from vqspeech.train.views import warped_basis

    cfg = FeatureConfig("logmel", 80, 0.0, "none")
    t = np.arange(16000) / 16000
    tone = np.sin(2 * np.pi * 1000 * t).astype(np.float32)
    peak = {
        a: int(np.argmax(extract(tone, cfg, warped_basis(cfg.mel_basis, a)).mean(axis=0)))
        for a in (0.85, 1.0, 1.15)
    }
    assert peak[0.85] < peak[1.0] < peak[1.15]  # 850 Hz < 1 kHz < 1150 Hz
    hz = librosa_mel_centres(cfg)
    assert abs(hz[peak[1.15]] - 1150) < abs(hz[peak[1.15]] - 1000)
    noise = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    plain = extract(noise, cfg)[:, :60].mean()
    for a in (0.85, 1.15):  # white noise: the bands below the top keep their level (a warp
        # applied transposed scales the power by alpha: |log alpha| = 0.14 to 0.16)
        warped = extract(noise, cfg, warped_basis(cfg.mel_basis, a))
        assert abs(warped[:, :60].mean() - plain) < 0.08


def librosa_mel_centres(cfg: object) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmax=8000, htk=True)[1:-1]


def test_views_keep_every_frame_and_without_channel_or_warp_are_the_original(tmp_path: Path):
    train, _ = shard_split(tmp_path, "train", 3, 0)
    unit = Normalizer(np.zeros(MFCC.dim), np.ones(MFCC.dim))
    add_views(train, unit, FEATURES, 1, "off", 0.0, seed=0)
    assert train.views is not None and train.views.shape == (1, *train.features.shape)
    np.testing.assert_allclose(train.views[0], train.features, rtol=1e-5, atol=1e-4)
    add_views(train, unit, FEATURES, 2, "strong", 0.15, seed=0)
    first = train.views.copy()
    assert first.shape == (2, *train.features.shape) and np.isfinite(first).all()
    for v in range(2):  # each view is another rendition, the same frames
        assert np.abs(first[v] - train.features).mean() > 0.1
    assert np.abs(first[0] - first[1]).mean() > 0.1
    add_views(train, unit, FEATURES, 2, "strong", 0.15, seed=0)
    assert np.array_equal(train.views, first)  # seeded
    # an utterance's views do not depend on the other utterances
    alone = SplitData(
        train.features[: train.offsets[1]],
        train.offsets[:2],
        train.speakers[:1],
        train.utterance_ids[:1],
        train.audio[: train.audio_offsets[1]],
        train.audio_offsets[:2],
    )
    add_views(alone, unit, FEATURES, 2, "strong", 0.15, seed=0)
    assert np.array_equal(alone.views, first[:, : train.offsets[1]])
    train.audio = None
    with pytest.raises(ValueError, match=r"without audio \(features\.audio must be true\)"):
        add_views(train, unit, FEATURES, 1, "off", 0.0, seed=0)


def toy_with_views(views: int = 3) -> SplitData:
    rng = np.random.default_rng(0)
    lengths = np.array([30, 40, 35, 50])
    x = rng.standard_normal((int(lengths.sum()), 4)).astype(np.float32)
    data = SplitData(x, np.concatenate([[0], np.cumsum(lengths)]), np.arange(4) % 2, list("abcd"))
    data.views = np.stack([x + 100.0 * (v + 1) for v in range(views)])  # view v: +100 (v + 1)
    return data


def test_a_batch_reads_each_crops_drawn_view_and_keeps_the_original_beside_it():
    data = toy_with_views()
    utt, start = np.array([0, 1, 2, 3]), np.array([0, 5, 2, 10])
    c = gather(data, utt, start, 8, False, view=np.array([0, 1, 3, 2]))
    plain = gather(data, utt, start, 8, False)
    assert plain.clean is None and c.clean is not None
    np.testing.assert_array_equal(c.clean, plain.x)
    shift = np.broadcast_to(np.array([0.0, 100, 300, 200])[:, None, None], c.x.shape)
    np.testing.assert_allclose(c.x - plain.x, shift, atol=1e-3)
    # an epoch's batches draw every view and the original about equally, seeded
    plan = Plan(crop=8, batch_size=4, seed=1)
    shifts = []
    for _ in range(2):
        batches = list(plan.batches(InMemory(data), epoch=0))
        shifts.append(np.concatenate([np.round((b.x - b.clean)[:, 0, 0] / 100) for b in batches]))
    assert np.array_equal(shifts[0], shifts[1])
    counts = np.bincount(shifts[0].astype(int), minlength=4)
    assert (counts > 0).all() and len(shifts[0]) >= 16


def test_the_objective_is_scored_against_the_original_frames():
    x, clean = torch.zeros(2, 4, 3), torch.ones(2, 4, 3)
    d = loop.Dist()
    batch = CropBatch(x.numpy(), np.zeros(2, dtype=np.int64), clean=clean.numpy())
    assert torch.equal(loop._objective_frames(x, None, batch, d), clean)
    target = torch.full((2, 4, 80), 2.0)  # decoder targets other than the input come first
    assert torch.equal(loop._objective_frames(x, target, batch, d), target)
    assert torch.equal(loop._objective_frames(x, None, CropBatch(x.numpy(), batch.speakers), d), x)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": {"audio": False}}, "which needs features.audio true"),
        ({"model": {"family": "cpc"}}, "not model.family cpc"),
        ({"model": {"target": "logmel"}}, "with model.target logmel"),
    ],
)
def test_views_that_cannot_train_are_errors(change: dict, message: str):
    raw = copy.deepcopy(RAW)
    raw["train"]["views"] = 2
    parse_params(raw)  # the default VQ-VAE takes them
    for group, values in change.items():
        raw[group].update(values)
    with pytest.raises(ParamsError, match=message):
        parse_params(raw)


def test_views_train_a_hubert_against_the_originals_classes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The model reads views (here: the originals + 1000, and negated) but every loss is scored
    on the original frames, and the originals' classes are still learned (chance 0.25)."""
    from vqspeech.model.hubert import Hubert

    from .test_hubert import MODEL, phones

    data, val = phones(), phones(seed=1)
    data.views = np.stack([data.features + 1000.0, -data.features])
    scored, read = [], []
    losses, forward = Hubert.losses, Hubert.forward

    def spy_losses(self: Hubert, x: torch.Tensor, out: object) -> dict:
        scored.append(float(x.abs().max()))
        return losses(self, x, out)

    def spy_forward(self: Hubert, x: torch.Tensor, *args: object) -> object:
        read.append(float(x.abs().max()))
        return forward(self, x, *args)

    monkeypatch.setattr(Hubert, "losses", spy_losses)
    monkeypatch.setattr(Hubert, "forward", spy_forward)
    cfg = changed(DEFAULTS.train, epochs=15, batch_size=8, crop_frames=24, val_crops=16, lr=3e-3)
    a = loop.train(MODEL, cfg, data, val, checkpoint_dir=tmp_path, data_fingerprint="fp")
    assert max(read) > 500 and max(scored) < 500  # views read, originals scored
    assert a.last["val_hubert_accuracy"] > 0.35
