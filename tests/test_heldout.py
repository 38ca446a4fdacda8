"""The held-out split a shard at a time (vqspeech.evaluate.heldout): what evaluate and figures
read in passes must be what the whole split gives, row for row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vqspeech.evaluate import heldout
from vqspeech.evaluate.codes import read_frames
from vqspeech.features import shards
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer

DIM = 3


def _utt(uid: str, split: str, n: int, rng: np.random.Generator) -> Utterance:
    return Utterance(
        uid,
        f"s-{uid}",
        split,
        rng.standard_normal((n, DIM)).astype(np.float32),
        ["AH"] * n,
        audio=np.arange(n * 160, dtype=np.int16),
    )


@pytest.fixture
def split(tmp_path):
    """Two feature shards (test and train utterances mixed, test ids not sorted across them)
    and data/codes rows for the test utterances in the features' order."""
    rng = np.random.default_rng(0)
    parts = [
        [_utt("c", "test", 9, rng), _utt("t1", "train", 6, rng), _utt("a", "test", 8, rng)],
        [_utt("t2", "train", 4, rng), _utt("b", "test", 11, rng)],
    ]
    features = tmp_path / "features"
    for i, part in enumerate(parts):
        shards.write(features / f"part-{i:05d}.parquet", part, DIM)
    test = [u for part in parts for u in part if u.split == "test"]
    codes = tmp_path / "codes"
    codes.mkdir()
    rows = [(u.utterance_id, u.speaker, k) for u in test for k in range(len(u.features) // 2)]
    latents = rng.standard_normal((len(rows), 2)).astype(np.float32)
    table = pa.table(
        {
            "utterance_id": [r[0] for r in rows],
            "speaker": [r[1] for r in rows],
            "frame": pa.array([r[2] for r in rows], pa.int32()),
            "code": pa.array(np.arange(len(rows)) % 4, pa.int32()),
            "phone": ["AH"] * len(rows),
            "latent": pa.FixedSizeListArray.from_arrays(pa.array(latents.reshape(-1)), 2),
        }
    )
    pq.write_table(table, codes / "codes.parquet", row_group_size=5)
    return features, codes, test, latents


def test_passes_give_the_whole_split_row_for_row(split):
    features, codes, test, latents = split
    norm = Normalizer(np.full(DIM, 0.5), np.full(DIM, 2.0))
    held = heldout.CodedSplit(read_frames(codes), codes, features, "test", norm)
    assert held.n_frames.tolist() == [9, 8, 11]
    chunks = list(held.chunks(native=True))
    assert [c.first for c in chunks] == [0, 2]  # one per shard with coded utterances
    np.testing.assert_array_equal(np.concatenate([c.latents for c in chunks]), latents)
    paired = np.concatenate([heldout.pair_frames(norm(u.features, np.float64)) for u in test])
    np.testing.assert_array_equal(np.concatenate([c.paired for c in chunks]), paired)
    native = np.concatenate([norm(u.features, np.float64) for u in test])
    np.testing.assert_array_equal(np.concatenate([c.native for c in chunks]), native)
    assert chunks[1].native_rows == slice(17, 28) and chunks[1].rows == slice(8, 13)
    # rows gathered from the passes are the rows of the whole table
    for wanted in ([0, 3, 4, 12], [], list(range(13))):
        rows = heldout.Rows(np.array(wanted, dtype=np.int64))
        for c in held.chunks():
            rows.add(c.latents, c.rows)
        np.testing.assert_array_equal(rows.result(), latents[wanted])


def test_codes_out_of_the_features_order_or_missing_are_refused(split):
    features, codes, _, _ = split
    norm = Normalizer(np.zeros(DIM), np.ones(DIM))
    frames = pq.read_table(codes / "codes.parquet")
    order = [*range(4, frames.num_rows), *range(4)]  # c's 4 rows (of c, a, b) moved last
    pq.write_table(frames.take(order), codes / "codes.parquet")
    held = heldout.CodedSplit(read_frames(codes), codes, features, "test", norm)
    with pytest.raises(ValueError, match="not in the order of"):
        list(held.chunks())
    with pytest.raises(ValueError, match="not in its 'val' split"):
        heldout.CodedSplit(read_frames(codes), codes, features, "val", norm)


def test_index_and_reading_a_few_utterances(split):
    features, _, _, _ = split
    index = heldout.index(features, "train")
    assert index.column("utterance_id").to_pylist() == ["t1", "t2"]
    assert index.column("shard").to_pylist() == [0, 1]
    assert index.column("n_frames").to_pylist() == [6, 4]
    got = heldout.read_utterances(features, ["b", "c"], "test", audio=True)
    assert sorted(got) == ["b", "c"] and len(got["b"].features) == 11
    assert got["c"].audio is not None and got["c"].features.base is None  # copied out
    with pytest.raises(shards.ShardError, match="1 utterances not found in split 'test'"):
        heldout.read_utterances(features, ["b", "t1"], "test")


def test_spilled_rows_come_back_a_block_at_a_time(split, tmp_path):
    features, codes, _, latents = split
    norm = Normalizer(np.zeros(DIM), np.ones(DIM))
    held = heldout.CodedSplit(read_frames(codes), codes, features, "test", norm)
    wanted = [np.array([0, 3, 4, 12]), np.array([], dtype=np.int64), np.array([5, 6, 7, 8])]
    spill = heldout.Spill(wanted, tmp_path, "latent")
    for c in held.chunks():
        spill.add(c.latents.astype(np.float64), c.rows)
    for b, rows in enumerate(wanted):
        got = spill.block(b)
        assert got.dtype == np.float32 and got.shape == (len(rows), 2)
        np.testing.assert_array_equal(got, latents[rows])
    spill.paths[0].write_bytes(spill.paths[0].read_bytes()[:-4])  # one value short
    with pytest.raises(ValueError, match=r"latent\.0\.bin: gathered 7 values, not 4 rows of 2"):
        spill.block(0)


def test_the_synthesize_reader_reads_a_split_once_with_what_was_announced(split, monkeypatch):
    from vqspeech.synthesis.run import Reader

    features, _, _, _ = split
    passes, real = [], heldout.read_utterances

    def counted(folder, ids, split_, audio=False):
        passes.append((split_, sorted(ids)))
        return real(folder, ids, split_, audio)

    monkeypatch.setattr(heldout, "read_utterances", counted)
    reader = Reader(features, audio=True)
    reader.announce("test", ["c"])
    got = reader("test", ["b"])
    assert list(got) == ["b"] and got["b"].audio is not None
    assert passes == [("test", ["b", "c"])]  # the announced c came in b's pass
    assert list(reader("test", ["c"])) == ["c"] and len(passes) == 1  # and was kept
    assert list(reader("test", ["c", "b"])) == ["c", "b"]  # in the order asked
    assert passes[-1] == ("test", ["b"])  # b was not announced: returned, not kept
    assert list(reader("train", ["t2"])) == ["t2"] and passes[-1] == ("train", ["t2"])
    with pytest.raises(shards.ShardError, match="1 utterances not found in split 'test'"):
        reader("test", ["t1"])
