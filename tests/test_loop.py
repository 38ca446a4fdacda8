"""Training: determinism, exact resume, crops, bad input, checkpoints, dvclive curves."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pytest
import torch

from vqspeech.features.stats import Normalizer
from vqspeech.model.checkpoint import CheckpointError, load_model, save_model
from vqspeech.params import ModelParams, TrainParams
from vqspeech.train import checkpoints, loop
from vqspeech.train.checkpoints import CHECKPOINT, resume_step, run_dir
from vqspeech.train.crops import SplitData, batch, epoch_batches, random_crops
from vqspeech.train.livelog import truncate
from vqspeech.train.loop import TrainingError, train

from .conftest import DEFAULTS, changed, model_params

MODEL = model_params(
    channels=16,
    res_blocks=1,
    embedding_dim=8,
    speaker_dim=4,
    quantizer={"kmeans_batches": 2, "codebook_size": 8, "dead_threshold": 1.0},
)
CFG = changed(DEFAULTS.train, epochs=3, batch_size=4, crop_frames=8, val_crops=8)
UNIT = Normalizer(np.zeros(6), np.ones(6))


def run_key(model: ModelParams, cfg: TrainParams, data: str) -> str:
    """The key `train` files a run under: the params, the data and today's training code."""
    return checkpoints.run_key(model, cfg, data, loop.code_fingerprint())


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
    a = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    b = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "b", data_fingerprint="fp")
    c = train(
        MODEL,
        CFG.model_copy(update={"seed": 1}),
        data,
        val,
        checkpoint_dir=tmp_path / "c",
        data_fingerprint="fp",
    )
    assert same(weights(a.model), weights(b.model))
    assert a.last == b.last
    assert not same(weights(a.model), weights(c.model))
    assert a.steps == 3 * len(epoch_batches(data, 8, 4, 0, 0))
    assert set(a.last) >= {"train_loss", "val_recon", "val_perplexity", "val_codes_used", "epoch"}


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_weights(tmp_path: Path):
    data, val = toy(), toy(seed=1)
    whole = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "whole", data_fingerprint="fp")
    per_epoch = len(epoch_batches(data, 8, 4, 0, 0))

    def kill_mid_second_epoch(step: int, model) -> None:
        if step == per_epoch + 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(
            MODEL,
            CFG,
            data,
            val,
            checkpoint_dir=tmp_path / "cut",
            data_fingerprint="fp",
            on_step=kill_mid_second_epoch,
        )
    assert resume_step(tmp_path / "cut", run_key(MODEL, CFG, "fp"), 3) == per_epoch
    resumed = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "cut", data_fingerprint="fp")
    assert resumed.resumed_from == 1
    assert same(weights(whole.model), weights(resumed.model))
    assert resumed.last == whole.last
    # more epochs of the same run resume too; another configuration starts afresh
    nine = CFG.model_copy(update={"epochs": 9})
    assert resume_step(tmp_path / "cut", run_key(MODEL, nine, "fp"), 9) == 3 * per_epoch
    assert resume_step(tmp_path / "cut", run_key(MODEL, CFG, "other data"), 3) is None
    assert resume_step(tmp_path / "cut", run_key(DEFAULTS.model, CFG, "fp"), 3) is None
    # ... but fewer epochs never resume a longer run (they would return its model)
    assert resume_step(tmp_path / "cut", run_key(MODEL, CFG, "fp"), 2) is None


def test_fewer_epochs_start_afresh_instead_of_resuming_a_longer_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    data, val = toy(), toy(seed=1)
    two = CFG.model_copy(update={"epochs": 2})
    fresh_two = train(
        MODEL, two, data, val, checkpoint_dir=tmp_path / "fresh", data_fingerprint="fp"
    )
    train(
        MODEL, CFG, data, val, checkpoint_dir=tmp_path / "ws", data_fingerprint="fp"
    )  # 3 epochs first, in the same folder
    with caplog.at_level("WARNING"):
        short = train(MODEL, two, data, val, checkpoint_dir=tmp_path / "ws", data_fingerprint="fp")
    assert "3 epochs done, more than train.epochs = 2" in caplog.text
    assert short.resumed_from is None and short.last["epoch"] == 2
    assert short.steps == fresh_two.steps
    assert same(weights(short.model), weights(fresh_two.model))
    # the longer run resumes from the shorter one's checkpoint to its own weights
    longer = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "ws", data_fingerprint="fp")
    whole = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "whole", data_fingerprint="fp")
    assert longer.resumed_from == 2 and same(weights(longer.model), weights(whole.model))


def test_each_run_keeps_its_checkpoint_in_a_folder_of_its_own(tmp_path: Path):
    data = toy()
    one = CFG.model_copy(update={"epochs": 1})
    train(MODEL, one, data, None, checkpoint_dir=tmp_path, data_fingerprint="fp")
    train(
        MODEL,
        one.model_copy(update={"seed": 4}),
        data,
        None,
        checkpoint_dir=tmp_path,
        data_fingerprint="fp",
    )
    keys = {
        run_key(MODEL, one, "fp"),
        run_key(MODEL, one.model_copy(update={"seed": 4}), "fp"),
    }
    assert {p.name for p in tmp_path.iterdir()} == keys  # two runs, neither overwrote the other
    assert all(resume_step(tmp_path, k, 1) is not None for k in keys)


def test_changed_training_code_does_not_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """DVC reruns the stage on a code change: resuming a finished run would keep old weights."""
    train(
        MODEL,
        CFG.model_copy(update={"epochs": 1}),
        toy(),
        None,
        checkpoint_dir=tmp_path,
        data_fingerprint="fp",
    )
    assert resume_step(tmp_path, run_key(MODEL, CFG, "fp"), 3) is not None
    monkeypatch.setattr(loop, "code_fingerprint", lambda: "edited")
    assert resume_step(tmp_path, run_key(MODEL, CFG, "fp"), 3) is None


def test_code_fingerprint_covers_every_module_training_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A change to features/shards.py (read by train/crops.py) must not resume a checkpoint of
    the old code."""
    from vqspeech import imports

    names = {f.relative_to(imports.ROOT).as_posix() for f in imports.closure(loop.__file__)}
    assert {"train/loop.py", "train/crops.py", "features/shards.py", "model/quantizer.py"} <= names
    before = loop.code_fingerprint()
    copy = tmp_path / "vqspeech"
    shutil.copytree(imports.ROOT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    edited = copy / "features/shards.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    monkeypatch.setattr(loop, "__file__", str(copy / "train/loop.py"))
    edited_once = loop.code_fingerprint()
    assert edited_once != before
    # the decoder targets (not imported by the loop: they need librosa) count too
    for name in ("train/targets.py", "features/acoustic.py"):
        (copy / name).write_text((copy / name).read_text() + "\n# edited\n")
        assert loop.code_fingerprint() != edited_once, name
        edited_once = loop.code_fingerprint()


@pytest.mark.parametrize("log_every", [1, 2, 10])
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, log_every: int):
    data = toy()
    per_epoch = len(epoch_batches(data, 8, 4, 0, 0))
    assert per_epoch >= 3  # the poisoned step falls inside a window of 2 and of 10 steps

    def poison(step: int, model) -> None:  # a weight turns NaN after step per_epoch + 1
        if step == per_epoch + 1:
            with torch.no_grad():
                next(model.decoder.parameters()).fill_(float("nan"))

    cfg = CFG.model_copy(update={"log_every": log_every})
    bad = per_epoch + 2  # the first step whose loss is NaN, found whatever window it is read in
    with pytest.raises(TrainingError, match=rf"loss became nan at step {bad} \(epoch 2\)") as err:
        train(
            MODEL, cfg, data, None, checkpoint_dir=tmp_path, data_fingerprint="fp", on_step=poison
        )
    path = run_dir(tmp_path, run_key(MODEL, cfg, "fp")) / CHECKPOINT
    assert str(path) in str(err.value)
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_weights_gone_non_finite_after_the_last_step_are_not_checkpointed(tmp_path: Path):
    data = toy()
    per_epoch = len(epoch_batches(data, 8, 4, 0, 0))

    def poison(step: int, model) -> None:  # after the last step of epoch 2: every loss finite
        if step == 2 * per_epoch:
            with torch.no_grad():
                next(model.decoder.parameters()).fill_(float("nan"))

    with pytest.raises(TrainingError, match=r"weights became non-finite in epoch 2 \(decoder"):
        train(
            MODEL, CFG, data, None, checkpoint_dir=tmp_path, data_fingerprint="fp", on_step=poison
        )
    state = torch.load(run_dir(tmp_path, run_key(MODEL, CFG, "fp")) / CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1


def test_crops_are_uniform_over_valid_positions():
    data = SplitData(
        np.zeros((0, 1), np.float32), np.array([0, 10, 13, 40]), np.zeros(3, int), ["a", "b", "c"]
    )
    utt, start = random_crops(data, 8, 60000, np.random.default_rng(0))
    valid = {0: 3, 1: 0, 2: 20}  # start positions per utterance
    assert set(np.unique(utt)) == {0, 2}
    assert np.mean(utt == 0) == pytest.approx(3 / 23, abs=0.01)
    assert all(0 <= s <= valid[u] - 1 for u, s in zip(utt[:500], start[:500], strict=True))
    with pytest.raises(ValueError, match="crop of 28 frames is longer than every utterance"):
        random_crops(data, 28, 1, np.random.default_rng(0))


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
    result = train(
        MODEL,
        CFG.model_copy(update={"epochs": 1}),
        data,
        None,
        checkpoint_dir=tmp_path,
        data_fingerprint="fp",
    )
    save_model(tmp_path / "model.pt", result.model, {"speakers": ["a", "b"]})
    model, payload = load_model(tmp_path / "model.pt", expect=MODEL)
    assert payload["speakers"] == ["a", "b"]
    assert same(weights(model), weights(result.model))
    other = changed(MODEL, quantizer={"codebook_size": 44})
    expected = r"\{'quantizer.codebook_size': \(8, 44\)\} \(file, expected\)$"
    with pytest.raises(
        CheckpointError, match=r"model\.pt: written for other model params: " + expected
    ):
        load_model(tmp_path / "model.pt", expect=other)


def test_dvclive_rows_after_the_checkpoint_are_dropped(tmp_path: Path):
    tsv = tmp_path / "plots/metrics/train/loss.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("timestamp\tstep\tloss\n1\t10\t0.9\n2\t20\t0.8\n3\t30\t0.7\n")
    assert truncate(tmp_path, 20) == 1
    assert tsv.read_text() == "timestamp\tstep\tloss\n1\t10\t0.9\n2\t20\t0.8\n"


def test_codebook_snapshots_leave_the_run_unchanged_and_belong_to_their_run(tmp_path: Path):
    from vqspeech.features.shards import Utterance
    from vqspeech.train.snapshots import Snapshots, collect, schedule

    data, val = toy(), toy(seed=1)
    plain = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "plain", data_fingerprint="fp")
    sample = [
        Utterance(f"v{i}", "s", "val", np.asarray(val.features[a:b]), ["AH"] * (b - a))
        for i, (a, b) in enumerate(zip(val.offsets[:-1], val.offsets[1:], strict=True))
    ]
    key = run_key(MODEL, CFG, "fp")
    folder = run_dir(tmp_path / "snap", key)
    snaps = Snapshots(folder, key, sample, UNIT, every=2, max_latents=30)
    snapped = train(
        MODEL,
        CFG,
        data,
        val,
        checkpoint_dir=tmp_path / "snap",
        data_fingerprint="fp",
        on_epoch=snaps,
    )
    assert same(weights(plain.model), weights(snapped.model))  # snapshots change nothing
    assert schedule(3, 2) == [0, 2, 3] and schedule(10, 5) == [0, 5, 10] and schedule(3, 0) == [3]
    snaps.take(3, snapped.model)  # the stage adds the final epoch when `every` skips it
    stale = Snapshots(folder, "other-run", sample, UNIT, every=1)
    stale.take(1, snapped.model)  # an epoch off this run's schedule: never read
    table = collect(folder, key, schedule(3, 2))
    epochs = table.column("epoch").to_numpy()
    assert sorted(set(epochs.tolist())) == [0, 2, 3]  # 0: after k-means init, before step 1
    assert collect(folder, key, [0, 2]).num_rows == 2 * (8 + 30)
    assert set(collect(folder, key, schedule(3, 0)).column("epoch").to_pylist()) == {3}
    last = table.filter(pa.compute.equal(table.column("epoch"), 3))
    kinds = last.column("kind").to_pylist()
    assert kinds.count("code") == 8 and kinds.count("latent") == 30
    book = np.stack(last.column("vector").to_pylist()[:8])
    np.testing.assert_allclose(book, snapped.model.quantizer.codebook.numpy(), atol=0)
    # another run's file at an epoch of this schedule is left out, never passed off as ours
    stale.take(2, snapped.model)
    assert set(collect(folder, key, [0, 2, 3]).column("epoch").to_pylist()) == {0, 3}
    with pytest.raises(ValueError, match=r"snapshot_0002\.parquet: no snapshot of this run"):
        collect(folder, key, [0, 2])
    # a run that starts afresh in the folder (fewer epochs) leaves none of the old files
    two = CFG.model_copy(update={"epochs": 2})
    snaps2 = Snapshots(
        run_dir(tmp_path / "snap", run_key(MODEL, two, "fp")),
        key,
        sample,
        UNIT,
        every=2,
        max_latents=30,
    )
    train(
        MODEL,
        two,
        data,
        val,
        checkpoint_dir=tmp_path / "snap",
        data_fingerprint="fp",
        on_epoch=snaps2,
    )
    assert sorted(p.name for p in folder.glob("snapshot_*")) == [
        "snapshot_0000.parquet",
        "snapshot_0002.parquet",
    ]


def test_model_file_errors_are_one_line_naming_the_file(tmp_path: Path):
    data = toy()
    result = train(
        MODEL,
        CFG.model_copy(update={"epochs": 1}),
        data,
        None,
        checkpoint_dir=tmp_path,
        data_fingerprint="fp",
    )
    good = tmp_path / "model.pt"
    save_model(good, result.model, {"speakers": ["a", "b"]})
    cases = {
        "junk.pt": (b"\x00not a model", "not a readable model file"),
        "empty.pt": (b"", "not a readable model file"),
    }
    for name, (blob, msg) in cases.items():
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(CheckpointError, match=msg) as err:
            load_model(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)
        assert "weights_only=False" not in str(err.value)
    torch.save(result.model, tmp_path / "pickle.pt")  # the whole module, pickled
    with pytest.raises(CheckpointError, match="not a plain state-dict model file") as err:
        load_model(tmp_path / "pickle.pt")
    assert str(tmp_path / "pickle.pt") in str(err.value) and "\n" not in str(err.value)
    payload = torch.load(good, weights_only=True)
    cfg = payload["config"]["model"]
    variants = {
        "nokeys.pt": ({"weights": 1}, r"expected 'config' and 'state_dict'"),
        "old.pt": (
            {k: v for k, v in payload.items() if k != "format"} | {"config": {"channels": 16}},
            r"a model file of an older layout \(format 1, its model config flat",
        ),
        "layout.pt": (
            {**payload, "config": {**payload["config"], "wavenet": {"layers": 3}}},
            r"model config of another layout \(expected 'model' and 'data', found "
            r"\['data', 'model', 'wavenet'\]\)",
        ),
        "badcfg.pt": (
            {**payload, "config": {**payload["config"], "model": {**cfg, "decoder": "lstm"}}},
            "invalid model config: decoder: Input should be 'deconv' or 'wavenet'",
        ),
        "baddata.pt": (
            {**payload, "config": {**payload["config"], "data": {"dims": 6}}},
            "invalid model config: .*unexpected keyword argument 'dims'",
        ),
        "shape.pt": (
            {**payload, "config": {**payload["config"], "model": {**cfg, "channels": 32}}},
            r"weights do not fit the model config: size mismatch for encoder\.",
        ),
        "types.pt": (
            {**payload, "config": {**payload["config"], "model": {**cfg, "channels": "128"}}},
            "invalid model config: channels: Input should be a valid integer",
        ),
    }
    for name, (obj, msg) in variants.items():
        torch.save(obj, tmp_path / name)
        with pytest.raises(CheckpointError, match=msg) as err:
            load_model(tmp_path / name)
        assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(CheckpointError, match="no such model file"):
        load_model(tmp_path / "missing.pt")


def test_on_epoch_runs_before_the_checkpoint_it_belongs_to(tmp_path: Path):
    """What on_epoch keeps with the run (snapshots, curves) is never older than the checkpoint
    a resume starts from: a kill between the two loses nothing."""
    seen = []

    def on_epoch(epoch: int, model) -> None:
        path = run_dir(tmp_path, run_key(MODEL, CFG, "fp")) / CHECKPOINT
        done = torch.load(path, weights_only=True)["epoch"] if path.exists() else 0
        seen.append((epoch, done))

    train(
        MODEL, CFG, toy(), None, checkpoint_dir=tmp_path, data_fingerprint="fp", on_epoch=on_epoch
    )
    assert seen == [(0, 0), (1, 0), (2, 1), (3, 2)]


def test_a_checkpoint_of_another_number_of_ranks_is_not_resumed(tmp_path: Path, caplog):
    train(
        MODEL,
        CFG.model_copy(update={"epochs": 1}),
        toy(),
        None,
        checkpoint_dir=tmp_path,
        data_fingerprint="fp",
    )
    key = run_key(MODEL, CFG, "fp")
    path = run_dir(tmp_path, key) / CHECKPOINT
    assert checkpoints.load_resumable(path, key, 3) is not None  # written by one rank
    with caplog.at_level("WARNING"):
        assert checkpoints.load_resumable(path, key, 3, world=2) is None
    assert "written by a run of 1 rank(s), this one has 2" in caplog.text
    assert checkpoints.resume_step(tmp_path, key, 3, world=2) is None
    assert checkpoints.resume_step(tmp_path, key, 3) == len(epoch_batches(toy(), 8, 4, 0, 0))


def test_a_static_target_trains_on_the_inputs_static_third_and_round_trips(tmp_path: Path):
    static = changed(MODEL, target="static")
    data = toy()  # 6 dimensions: 2 static + 2 delta + 2 delta-delta
    result = train(static, CFG, data, toy(seed=1), checkpoint_dir=tmp_path, data_fingerprint="fp")
    assert result.model.output_dim == 2 and math.isfinite(result.last["val_recon"])
    save_model(tmp_path / "model.pt", result.model, {"speakers": ["a", "b"]})
    model, _ = load_model(tmp_path / "model.pt", expect=static)
    assert model.output_dim == 2 and same(weights(model), weights(result.model))


def test_warmup_raises_the_learning_rate_linearly_from_the_first_step():
    assert [loop.warmup_lr(s, 1e-3, 4) for s in range(6)] == pytest.approx(
        [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3]
    )
    assert loop.warmup_lr(0, 1e-3, 0) == 1e-3


def test_the_loop_applies_the_warmup_and_resumes_it(tmp_path: Path):
    """A warm-up far longer than the run keeps every step's rate near 0: the encoder stays at
    its seeded start, where the same run without warm-up moves it; a run resumed mid-warm-up
    ends where an uninterrupted one does."""
    slow = CFG.model_copy(update={"warmup_steps": 10**7})
    start = train(
        MODEL,
        CFG.model_copy(update={"epochs": 1, "lr": 1e-12}),
        toy(),
        None,
        checkpoint_dir=tmp_path / "s",
        data_fingerprint="fp",
    ).model
    warm = train(MODEL, slow, toy(), None, checkpoint_dir=tmp_path / "w", data_fingerprint="fp")
    plain = train(MODEL, CFG, toy(), None, checkpoint_dir=tmp_path / "p", data_fingerprint="fp")
    w0 = start.encoder.convs[0].weight
    assert torch.allclose(warm.model.encoder.convs[0].weight, w0, atol=1e-6)
    assert not torch.allclose(plain.model.encoder.convs[0].weight, w0, atol=1e-4)
    ramp = CFG.model_copy(update={"warmup_steps": 20, "lr": 1e-3})
    whole = train(MODEL, ramp, toy(), None, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    train(
        MODEL,
        ramp.model_copy(update={"epochs": 1}),
        toy(),
        None,
        checkpoint_dir=tmp_path / "b",
        data_fingerprint="fp",
    )
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    resumed = train(MODEL, ramp, toy(), None, checkpoint_dir=tmp_path / "c", data_fingerprint="fp")
    assert resumed.resumed_from == 1 and same(weights(resumed.model), weights(whole.model))
