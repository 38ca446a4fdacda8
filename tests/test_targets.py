"""`model.target: logmel`: the deconv decoder rebuilds log mel energies, not its MFCC input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from pydantic import ValidationError

from vqspeech.features import shards
from vqspeech.features.acoustic import FeatureConfig, extract
from vqspeech.features.extract import Done, Row, process
from vqspeech.features.stats import Normalizer
from vqspeech.model.build import build
from vqspeech.model.checkpoint import load_model, save_model
from vqspeech.train import loop
from vqspeech.train.crops import SplitData, load_split, random_crops
from vqspeech.train.targets import TARGET_MELS, add_logmel_targets, logmel_frames

from .conftest import DEFAULTS, audio_options, changed, features, model_params, write_grid

MFCC = features()  # the default input: MFCC39, pre-emphasis 0.97
MODEL = model_params(
    channels=16,
    res_blocks=1,
    embedding_dim=8,
    speaker_dim=4,
    target="logmel",
    quantizer={"kmeans_batches": 2, "codebook_size": 8},
)
CFG = changed(DEFAULTS.train, epochs=2, batch_size=4, crop_frames=8, val_crops=8)


def shard_split(tmp_path: Path, split: str, n: int, seed: int) -> tuple[SplitData, list]:
    """n utterances of noise through the feature stage's own `process`, as one shard."""
    folder = tmp_path / split
    folder.mkdir()
    utts = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        seconds = 0.5 + 0.11 * i
        pcm = (rng.standard_normal(int(seconds * 16000)) * 2000).astype(np.int16)
        wav = folder / f"{split}{i}.wav"
        sf.write(str(wav), pcm, 16000, subtype="PCM_16")
        grid = write_grid(folder / f"{split}{i}.TextGrid", seconds)
        row = Row(f"{split}{i}", f"spk{i % 2}", split, str(wav), str(grid), 16000)
        done = process(row, MFCC, *audio_options())
        assert isinstance(done, Done)
        utts.append(done.utterance)
    shards.write(folder / "part-00000.parquet", utts, MFCC.dim)
    unit = Normalizer(np.zeros(MFCC.dim), np.ones(MFCC.dim))
    data, _ = load_split(folder, split, unit, {"spk0": 0, "spk1": 1}, audio=True)
    return data, utts


def test_targets_are_the_log_mel_energies_of_the_input_frames(tmp_path: Path):
    train, utts = shard_split(tmp_path, "train", 3, 0)
    val, val_utts = shard_split(tmp_path, "val", 2, 1)
    norm = add_logmel_targets(train, val, MFCC.preemphasis)
    assert train.targets is not None and val.targets is not None
    assert train.targets.shape == (len(train.features), TARGET_MELS)
    logmel = FeatureConfig("logmel", TARGET_MELS, MFCC.preemphasis, normalize="none")
    for data, group in ((train, utts), (val, val_utts)):
        for u, utt in enumerate(group):
            frames = data.targets[data.offsets[u] : data.offsets[u + 1]]
            direct = extract(utt.audio.astype(np.float32) / 32768.0, logmel)
            assert len(direct) == len(utt.features) == len(frames)
            np.testing.assert_allclose(frames, norm(direct), rtol=1e-5, atol=1e-4)
    # standardized by the train split alone: train mean 0 / std 1, val by the same statistics
    np.testing.assert_allclose(train.targets.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(train.targets.std(axis=0), 1, atol=1e-3)
    assert norm.frames == len(train.features)
    assert not np.allclose(val.targets.mean(axis=0), 0, atol=1e-3)


def test_targets_need_the_audio_of_exactly_the_frames(tmp_path: Path):
    train, _ = shard_split(tmp_path, "train", 2, 0)
    n = int(train.lengths[0])
    fewer = SplitData(
        train.features[: n - 3],
        np.array([0, n - 3]),
        train.speakers[:1],
        train.utterance_ids[:1],
        train.audio,
        train.audio_offsets[:2],
    )
    why = rf"train0: its audio gives {n} log-mel frames, not {n - 3}$"
    with pytest.raises(ValueError, match=why):
        logmel_frames(fewer, 0.97)
    train.audio = train.audio_offsets = None
    with pytest.raises(ValueError, match=r"without audio \(features\.audio must be true\)"):
        logmel_frames(train, 0.97)


def test_training_rebuilds_the_targets_not_the_input(tmp_path: Path):
    train, _ = shard_split(tmp_path, "train", 4, 0)
    val, _ = shard_split(tmp_path, "val", 2, 1)
    add_logmel_targets(train, val, MFCC.preemphasis)
    result = loop.train(
        MODEL, CFG, train, val, checkpoint_dir=tmp_path / "ckpt", data_fingerprint="fp"
    )
    model = result.model
    assert model.output_dim == TARGET_MELS and model.input_dim == MFCC.dim
    assert model.config()["data"] == {"input_dim": 39, "n_speakers": 2, "output_dim": 80}
    # val_recon is the MSE against the log-mel targets of the validation crops
    model.eval()
    rng = np.random.default_rng([CFG.seed, 2 * 10**6])
    n = min(CFG.val_crops, int(val.lengths.sum()) // CFG.crop_frames)
    utt, start = random_crops(val, CFG.crop_frames, n, rng)
    rows = val.offsets[utt][:, None] + start[:, None] + np.arange(CFG.crop_frames)
    with torch.no_grad():
        out = model(torch.from_numpy(val.features[rows]), torch.from_numpy(val.speakers[utt]))
    assert out.reconstruction.shape == (n, CFG.crop_frames, TARGET_MELS)
    expected = torch.nn.functional.mse_loss(out.reconstruction, torch.from_numpy(val.targets[rows]))
    assert result.last["val_recon"] == pytest.approx(float(expected), rel=1e-5)
    # the model file keeps the output size: it loads back into the same model
    save_model(tmp_path / "model.pt", model, {})
    loaded, _ = load_model(tmp_path / "model.pt", expect=MODEL)
    assert loaded.output_dim == TARGET_MELS
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k


def test_target_and_data_must_agree(tmp_path: Path):
    train, _ = shard_split(tmp_path, "train", 2, 0)
    with pytest.raises(
        loop.TrainingError,
        match=r"model\.target is 'logmel' but the train split "
        r"has no decoder targets",
    ):
        loop.train(MODEL, CFG, train, None, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    add_logmel_targets(train, None, MFCC.preemphasis)
    plain = MODEL.model_copy(update={"target": "input"})
    with pytest.raises(loop.TrainingError, match=r"target is 'input' but the train split has"):
        loop.train(plain, CFG, train, None, checkpoint_dir=tmp_path / "b", data_fingerprint="fp")


@pytest.mark.parametrize("other", [{"family": "vqcpc"}, {"decoder": "wavenet"}])
def test_only_a_deconv_vqvae_takes_another_target(other: dict):
    with pytest.raises(ValidationError, match=r"model\.target 'logmel' is what the deconv"):
        model_params(target="logmel", **other)
    with pytest.raises(ValueError, match="a vqcpc model has no decoder"):
        build(model_params(family="vqcpc"), input_dim=39, n_speakers=1, output_dim=80)
