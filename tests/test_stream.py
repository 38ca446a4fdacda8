"""Streamed training data: the same batches as in memory when the split fits the buffer, the
same batches whatever the data-loader workers, ranks that split an epoch, memory in windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vqspeech.features import shards
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.train import loop
from vqspeech.train.crops import batch, epoch_batches, load_split
from vqspeech.train.stream import InMemory, Plan, Streamed, loader

from .conftest import DEFAULTS, changed, model_params

DIM = 5
NORM = Normalizer(np.full(DIM, 0.5), np.full(DIM, 2.0))
PLAN = Plan(crop=8, batch_size=4, seed=3)


def write_shards(folder: Path, n_shards: int = 6, per_shard: int = 5, seed: int = 0) -> None:
    """Shards of train utterances of 20-60 frames (3 speakers) and a val one per shard; every
    frame's first feature is its (utterance, frame) number, so a crop tells where it came from."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    u = 0
    for s in range(n_shards):
        utts = []
        for i in range(per_shard + 1):
            n = int(rng.integers(20, 60))
            x = rng.standard_normal((n, DIM)).astype(np.float32)
            x[:, 0] = u * 1000 + np.arange(n)
            split = "val" if i == per_shard else "train"
            utts.append(Utterance(f"u{u:03d}", f"spk{u % 3}", split, x, ["AH"] * n))
            u += 1
        shards.write(folder / f"part-{s:05d}.parquet", utts, DIM)


def frame_ids(x: np.ndarray) -> np.ndarray:
    return np.rint(x[..., 0] * NORM.std[0] + NORM.mean[0]).astype(np.int64)


def stacked(batches) -> np.ndarray:
    return np.stack([b.x for b in batches])


def test_a_split_that_fits_the_buffer_streams_the_in_memory_batches(tmp_path: Path):
    write_shards(tmp_path)
    streamed = Streamed(tmp_path, "train", NORM, buffer_bytes=1e9)
    memory, names = load_split(tmp_path, "train", NORM)
    assert streamed.speaker_names == names and streamed.utterances == len(memory.utterance_ids)
    assert len(streamed.windows(3, 0)) == 1
    for epoch in (0, 1):
        expected = [batch(memory, u, s, 8) for u, s in epoch_batches(memory, 8, 4, 3, epoch)]
        got = list(PLAN.batches(streamed, epoch))
        assert len(got) == len(expected) == PLAN.steps(streamed, epoch)
        for g, (x, spk) in zip(got, expected, strict=True):
            np.testing.assert_array_equal(g.x, x)
            np.testing.assert_array_equal(g.speakers, spk)
        mem = list(PLAN.batches(InMemory(memory), epoch))
        np.testing.assert_array_equal(stacked(mem), stacked(got))


def test_windows_bound_memory_and_every_crop_is_a_stretch_of_one_utterance(tmp_path: Path):
    write_shards(tmp_path)
    memory, _ = load_split(tmp_path, "train", NORM)
    shard_bytes = 4 * DIM * memory.lengths.sum() / 6
    streamed = Streamed(tmp_path, "train", NORM, buffer_bytes=2.5 * shard_bytes)
    for epoch in (0, 1):
        windows = streamed.windows(3, epoch)
        assert len(windows) >= 3
        assert sorted(s for w in windows for s in w.shards) == list(range(6))  # each shard once
        for w in windows:
            if len(w.shards) > 1:
                assert 4 * DIM * w.lengths.sum() <= 2.5 * shard_bytes
        for b in PLAN.batches(streamed, epoch):
            ids = frame_ids(b.x)
            assert (np.diff(ids, axis=1) == 1).all()  # consecutive frames of one utterance
            utt = ids[:, 0] // 1000
            np.testing.assert_array_equal(b.speakers, [names_index(streamed, u) for u in utt])
    # the shard order, and so the windows, change with the epoch and the seed
    orders = {
        tuple(s for w in streamed.windows(seed, e) for s in w.shards)
        for seed in (0, 1)
        for e in (0, 1, 2)
    }
    assert len(orders) > 1


def names_index(streamed: Streamed, utt_number: int) -> int:
    return streamed.speaker_index[f"spk{utt_number % 3}"]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_the_same_batches_in_the_same_order_whatever_the_workers(tmp_path: Path, workers: int):
    write_shards(tmp_path)
    streamed = Streamed(tmp_path, "train", NORM, buffer_bytes=4 * DIM * 60)  # ~a shard each
    serial = list(loader(PLAN, streamed, 1))
    parallel = list(loader(PLAN, streamed, 1, workers=workers))
    assert len(serial) == len(parallel) == PLAN.steps(streamed, 1)
    np.testing.assert_array_equal(stacked(serial), stacked(parallel))
    np.testing.assert_array_equal(
        np.stack([b.speakers for b in serial]), np.stack([b.speakers for b in parallel])
    )


def test_ranks_take_alternate_batches_of_one_epoch(tmp_path: Path):
    write_shards(tmp_path)
    streamed = Streamed(tmp_path, "train", NORM, buffer_bytes=4 * DIM * 100)
    whole = stacked(PLAN.batches(streamed, 2))
    ranks = [stacked(PLAN.batches(streamed, 2, rank=r, world=3)) for r in range(3)]
    n = len(whole) // 3
    assert all(len(r) == n == PLAN.steps(streamed, 2, world=3) for r in ranks)
    for r in range(3):
        np.testing.assert_array_equal(ranks[r], whole[r : 3 * n : 3])
    # two workers on rank 1 still give rank 1's batches
    np.testing.assert_array_equal(stacked(loader(PLAN, streamed, 2, 1, 3, workers=2)), ranks[1])


def test_take_reads_crops_across_shards_in_the_order_asked(tmp_path: Path):
    write_shards(tmp_path)
    streamed = Streamed(tmp_path, "train", NORM, buffer_bytes=1.0)
    memory, _ = load_split(tmp_path, "train", NORM)
    rng = np.random.default_rng(0)
    utt = rng.integers(0, len(memory.utterance_ids), 30)
    start = rng.integers(0, 12, 30)
    got = streamed.take(utt, start, 8)
    x, spk = batch(memory, utt, start, 8)
    np.testing.assert_array_equal(got.x, x)
    np.testing.assert_array_equal(got.speakers, spk)


def test_training_on_the_stream_gives_the_in_memory_weights(tmp_path: Path):
    write_shards(tmp_path / "shards")
    model = model_params(
        channels=16,
        res_blocks=1,
        embedding_dim=8,
        speaker_dim=4,
        quantizer={"codebook_size": 8, "kmeans_batches": 2},
    )
    cfg = changed(DEFAULTS.train, epochs=2, batch_size=4, crop_frames=8, val_crops=8)
    memory, names = load_split(tmp_path / "shards", "train", NORM)
    val, _ = load_split(tmp_path / "shards", "val", NORM, {s: i for i, s in enumerate(names)})
    a = loop.train(model, cfg, memory, val, checkpoint_dir=tmp_path / "a", data_fingerprint="fp")
    streamed = Streamed(tmp_path / "shards", "train", NORM, buffer_bytes=1e9)
    val_s = Streamed(tmp_path / "shards", "val", NORM, 1e9, streamed.speaker_index)
    b = loop.train(
        model,
        cfg.model_copy(update={"workers": 2}),
        streamed,
        val_s,
        checkpoint_dir=tmp_path / "b",
        data_fingerprint="fp",
    )
    assert a.steps == b.steps and a.last == b.last
    wa, wb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # windows smaller than the split: still trains, other batches
    small = Streamed(tmp_path / "shards", "train", NORM, buffer_bytes=4 * DIM * 100)
    c = loop.train(model, cfg, small, val_s, checkpoint_dir=tmp_path / "c", data_fingerprint="fp")
    assert c.steps == 2 * PLAN.steps(small, 0) and c.last != a.last


def test_a_shard_changed_under_the_stream_is_an_error_naming_it(tmp_path: Path):
    write_shards(tmp_path, n_shards=2)
    streamed = Streamed(tmp_path, "train", NORM, buffer_bytes=1e9)
    write_shards(tmp_path, n_shards=1, per_shard=2, seed=1)  # part-00000 now holds fewer
    with pytest.raises(ValueError, match=r"part-00000\.parquet.*the index has"):
        list(PLAN.batches(streamed, 0))
    with pytest.raises(ValueError, match="no 'test' utterances"):
        Streamed(tmp_path, "test", NORM, buffer_bytes=1e9)


def test_one_window_is_read_once_and_windows_are_read_each_epoch(tmp_path: Path, monkeypatch):
    write_shards(tmp_path)
    reads: list[tuple[int, ...]] = []
    whole = Streamed(tmp_path, "train", NORM, buffer_bytes=1e9)
    small = Streamed(tmp_path, "train", NORM, buffer_bytes=4 * DIM * 100)
    for source in (whole, small):
        read = source._read
        monkeypatch.setattr(source, "_read", lambda g, read=read: reads.append(tuple(g)) or read(g))
    for epoch in (0, 1, 2):
        list(PLAN.batches(whole, epoch))
    assert reads == [tuple(range(6))]
    reads.clear()
    for epoch in (0, 1):
        list(PLAN.batches(small, epoch))
        assert sorted(s for g in reads for s in g) == list(range(6))  # each shard once
        reads.clear()


def test_windows_a_batch_could_not_be_cut_from_fail_before_training(tmp_path: Path):
    rng = np.random.default_rng(0)
    for s in range(6):  # one speaker per shard, as the features stage writes a speaker-sorted list
        utts = [
            Utterance(
                f"s{s}u{i}",
                f"spk{s}",
                "train",
                rng.standard_normal((30, DIM)).astype(np.float32),
                ["AH"] * 30,
            )
            for i in range(4)
        ]
        shards.write(tmp_path / f"part-{s:05d}.parquet", utts, DIM)
    grouped = Plan(crop=8, batch_size=4, seed=0, speakers_per_batch=4)
    whole = Streamed(tmp_path, "train", NORM, buffer_bytes=1e9)
    grouped.check(whole, 5)  # six speakers in one window: fine
    small = Streamed(tmp_path, "train", NORM, buffer_bytes=4 * DIM * 30 * 4 * 2)  # 2 shards
    with pytest.raises(ValueError, match=r"only 2 train speakers .* in epoch 1\); raise train"):
        grouped.check(small, 5)
    with pytest.raises(ValueError, match="crop of 31 frames is longer than every utterance"):
        Plan(crop=31, batch_size=4, seed=0).check(whole, 3)
    model = model_params(
        family="vqcpc",
        channels=16,
        res_blocks=1,
        embedding_dim=8,
        cpc={"context_dim": 8, "prediction_steps": 2, "negatives": 3, "speakers_per_batch": 4},
        quantizer={"kmeans_batches": 2},
    )
    cfg = changed(DEFAULTS.train, epochs=3, batch_size=4, crop_frames=8, val_crops=8)
    with pytest.raises(loop.TrainingError, match=r"train split: model\.cpc\.speakers_per_batch"):
        loop.train(model, cfg, small, None, checkpoint_dir=tmp_path / "ckpt", data_fingerprint="fp")


def test_at_most_two_windows_are_in_memory(tmp_path: Path, monkeypatch):
    import gc
    import weakref

    write_shards(tmp_path)
    small = Streamed(tmp_path, "train", NORM, buffer_bytes=4 * DIM * 60)
    alive: list[weakref.ref] = []
    read = small._read

    def tracked(group):
        data = read(group)
        alive.append(weakref.ref(data))
        return data

    monkeypatch.setattr(small, "_read", tracked)
    most = 0
    for _ in PLAN.batches(small, 0):
        gc.collect()
        most = max(most, sum(r() is not None for r in alive))
    assert len(alive) >= 4 and most <= 2


def test_workers_share_a_one_window_split_read_once(tmp_path: Path, monkeypatch):
    import multiprocessing

    write_shards(tmp_path)
    whole = Streamed(tmp_path, "train", NORM, buffer_bytes=1e9)
    count = multiprocessing.get_context("fork").Value("i", 0)  # seen by the forked workers too
    read = whole._read

    def counted(group):
        with count.get_lock():
            count.value += 1
        return read(group)

    monkeypatch.setattr(whole, "_read", counted)
    for epoch in (0, 1):
        assert len(list(loader(PLAN, whole, epoch, workers=2))) == PLAN.steps(whole, epoch)
    assert count.value == 1
