"""Training: determinism, exact resume, crops, bad input, checkpoints, dvclive curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pytest
import torch

from vqspeech import training
from vqspeech.livelog import truncate
from vqspeech.model.vqvae import ModelConfig
from vqspeech.training import (
    CHECKPOINT,
    CheckpointError,
    TrainConfig,
    TrainingError,
    load_model,
    resume_step,
    run_key,
    save_model,
    train,
)
from vqspeech.trainset import SplitData, batch, crops, epoch_batches

MODEL = ModelConfig(input_dim=6, channels=16, res_blocks=1, embedding_dim=8, codebook_size=8,
                    n_speakers=2, speaker_dim=4, dead_threshold=1.0)  # fmt: skip
CFG = TrainConfig(epochs=3, batch_size=4, crop_frames=8, kmeans_batches=2, val_crops=8)


def toy(n_utts: int = 6, frames: int = 40, seed: int = 0) -> SplitData:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(frames // 2, frames, n_utts)
    x = rng.standard_normal((int(lengths.sum()), 6)).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return SplitData(x, offsets, np.arange(n_utts) % 2, [f"u{i}" for i in range(n_utts)])


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path: Path):
    data, val = toy(), toy(seed=1)
    a = train(MODEL, CFG, data, val, tmp_path / "a", "fp")
    b = train(MODEL, CFG, data, val, tmp_path / "b", "fp")
    c = train(MODEL, TrainConfig(**{**CFG.__dict__, "seed": 1}), data, val, tmp_path / "c", "fp")
    assert same(weights(a.model), weights(b.model))
    assert a.last == b.last
    assert not same(weights(a.model), weights(c.model))
    assert a.steps == 3 * len(epoch_batches(data, 8, 4, 0, 0))
    assert set(a.last) >= {"train_loss", "val_recon", "val_perplexity", "val_codes_used", "epoch"}


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_weights(tmp_path: Path):
    data, val = toy(), toy(seed=1)
    whole = train(MODEL, CFG, data, val, tmp_path / "whole", "fp")
    per_epoch = len(epoch_batches(data, 8, 4, 0, 0))

    def kill_mid_second_epoch(step: int, model) -> None:
        if step == per_epoch + 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(MODEL, CFG, data, val, tmp_path / "cut", "fp", on_step=kill_mid_second_epoch)
    assert resume_step(tmp_path / "cut", run_key(MODEL, CFG, "fp")) == per_epoch
    resumed = train(MODEL, CFG, data, val, tmp_path / "cut", "fp")
    assert resumed.resumed_from == 1
    assert same(weights(whole.model), weights(resumed.model))
    assert resumed.last == whole.last
    # more epochs of the same run resume too; another configuration starts afresh
    assert resume_step(
        tmp_path / "cut", run_key(MODEL, TrainConfig(**{**CFG.__dict__, "epochs": 9}), "fp")
    )
    assert resume_step(tmp_path / "cut", run_key(MODEL, CFG, "other data")) is None
    assert resume_step(tmp_path / "cut", run_key(ModelConfig(), CFG, "fp")) is None


def test_changed_training_code_does_not_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """DVC reruns the stage on a code change: resuming a finished run would keep old weights."""
    train(MODEL, TrainConfig(**{**CFG.__dict__, "epochs": 1}), toy(), None, tmp_path, "fp")
    assert resume_step(tmp_path, run_key(MODEL, CFG, "fp")) is not None
    monkeypatch.setattr(training, "code_fingerprint", lambda: "edited")
    assert resume_step(tmp_path, run_key(MODEL, CFG, "fp")) is None


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path):
    data = toy()
    per_epoch = len(epoch_batches(data, 8, 4, 0, 0))

    def poison(step: int, model) -> None:  # a weight turns NaN during epoch 2
        if step == per_epoch + 1:
            with torch.no_grad():
                next(model.decoder.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"loss became nan at step \d+ \(epoch 2\)") as err:
        train(MODEL, CFG, data, None, tmp_path, "fp", on_step=poison)
    assert str(tmp_path / CHECKPOINT) in str(err.value)
    state = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_crops_are_uniform_over_valid_positions():
    data = SplitData(
        np.zeros((0, 1), np.float32), np.array([0, 10, 13, 40]), np.zeros(3, int), ["a", "b", "c"]
    )
    utt, start = crops(data, 8, 60000, np.random.default_rng(0))
    valid = {0: 3, 1: 0, 2: 20}  # start positions per utterance
    assert set(np.unique(utt)) == {0, 2}
    assert np.mean(utt == 0) == pytest.approx(3 / 23, abs=0.01)
    assert all(0 <= s <= valid[u] - 1 for u, s in zip(utt[:500], start[:500], strict=True))
    with pytest.raises(ValueError, match="crop of 28 frames is longer than every utterance"):
        crops(data, 28, 1, np.random.default_rng(0))


def test_batches_gather_the_right_frames():
    data = toy()
    utt, start = np.array([2, 0]), np.array([3, 0])
    x, spk = batch(data, utt, start, 5)
    np.testing.assert_array_equal(x[0], data.features[data.offsets[2] + 3 : data.offsets[2] + 8])
    assert spk.tolist() == [0, 0]
    assert (
        epoch_batches(data, 8, 4, 0, 1)[0][0].tolist()
        == epoch_batches(data, 8, 4, 0, 1)[0][0].tolist()
    )
    assert (
        epoch_batches(data, 8, 4, 0, 1)[0][0].tolist()
        != epoch_batches(data, 8, 4, 0, 2)[0][0].tolist()
    )


def test_model_file_loads_with_weights_only_and_checks_the_config(tmp_path: Path):
    data = toy()
    result = train(MODEL, TrainConfig(**{**CFG.__dict__, "epochs": 1}), data, None, tmp_path, "fp")
    save_model(tmp_path / "model.pt", result.model, {"speakers": ["a", "b"]})
    model, payload = load_model(tmp_path / "model.pt", expect=MODEL)
    assert payload["speakers"] == ["a", "b"]
    assert same(weights(model), weights(result.model))
    other = ModelConfig(**{**MODEL.to_dict(), "codebook_size": 44})
    with pytest.raises(CheckpointError, match=r"model\.pt: written for a different model config: "
                       r"\{'codebook_size': \(8, 44\)\}"):  # fmt: skip
        load_model(tmp_path / "model.pt", expect=other)


def test_dvclive_rows_after_the_checkpoint_are_dropped(tmp_path: Path):
    tsv = tmp_path / "plots/metrics/train/loss.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("timestamp\tstep\tloss\n1\t10\t0.9\n2\t20\t0.8\n3\t30\t0.7\n")
    assert truncate(tmp_path, 20) == 1
    assert tsv.read_text() == "timestamp\tstep\tloss\n1\t10\t0.9\n2\t20\t0.8\n"


def test_codebook_snapshots_leave_the_run_unchanged_and_keep_only_this_runs_files(tmp_path: Path):
    from vqspeech.shards import Utterance
    from vqspeech.snapshots import Snapshots, collect

    data, val = toy(), toy(seed=1)
    plain = train(MODEL, CFG, data, val, tmp_path / "plain", "fp")
    sample = [
        Utterance(f"v{i}", "s", "val", np.asarray(val.features[a:b]), ["AH"] * (b - a))
        for i, (a, b) in enumerate(zip(val.offsets[:-1], val.offsets[1:], strict=True))
    ]
    key = run_key(MODEL, CFG, "fp")
    snaps = Snapshots(tmp_path / "snap", key, sample, np.zeros(6), np.ones(6), every=2,
                      max_latents=30)  # fmt: skip
    snapped = train(MODEL, CFG, data, val, tmp_path / "snap", "fp", on_epoch=snaps)
    assert same(weights(plain.model), weights(snapped.model))  # snapshots change nothing
    stale = Snapshots(tmp_path / "snap", "other-run", sample, np.zeros(6), np.ones(6), every=1)
    stale.take(1, snapped.model)  # same folder, another run: ignored
    snaps.take(3, snapped.model)  # the stage adds the final epoch when `every` skips it
    table = collect(tmp_path / "snap", key, epochs=3)
    epochs = table.column("epoch").to_numpy()
    assert sorted(set(epochs.tolist())) == [0, 2, 3]  # 0: after k-means init, before step 1
    assert collect(tmp_path / "snap", key, epochs=2).num_rows == 2 * (8 + 30)
    last = table.filter(pa.compute.equal(table.column("epoch"), 3))
    kinds = last.column("kind").to_pylist()
    assert kinds.count("code") == 8 and kinds.count("latent") == 30
    book = np.stack(last.column("vector").to_pylist()[:8])
    np.testing.assert_allclose(book, snapped.model.quantizer.codebook.numpy(), atol=0)
