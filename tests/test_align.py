"""Codes joined with ground truth at 20 ms: label positions, the join, batched encoding."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from vqspeech.data.textgrid import Interval, PhoneAlignment
from vqspeech.evaluate.encode import encode, join, latent_labels
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer

from .conftest import model_params, vqvae


def tier(*spans: tuple[float, float, str]) -> PhoneAlignment:
    return PhoneAlignment(tuple(Interval(*s) for s in spans), spans[-1][1])


def test_latent_label_is_the_phone_at_the_centre_of_its_two_frames():
    # latent k: frames 2k, 2k+1; centre 20 k + 17.5 ms
    a = tier((0.0, 0.03, "sil"), (0.03, 0.1, "AH"), (0.1, 0.2, "T"))
    assert latent_labels(a, 8) == ["sil", "AH", "AH", "AH", "AH", "T", "T", "T"]
    # a boundary at 37.5 ms (latent 1's centre) belongs to the later phone
    b = tier((0.0, 0.0375, "sil"), (0.0375, 0.2, "S"))
    assert latent_labels(b, 3) == ["sil", "S", "S"]


def test_trimmed_features_shift_the_labels():
    a = tier((0.0, 0.03, "sil"), (0.03, 0.1, "AH"), (0.1, 0.2, "T"))
    # frame 0 started 20 ms into the audio: centres at 37.5, 57.5, ... ms of the original
    assert latent_labels(a, 4, start_s=0.02) == ["AH", "AH", "AH", "AH"]
    assert latent_labels(a, 5, start_s=0.02)[-1] == "T"


def test_a_tier_a_little_short_of_the_last_window_is_extended():
    a = tier((0.0, 0.05, "sil"), (0.05, 0.095, "N"))  # 5 latents need centres up to 97.5 ms
    assert latent_labels(a, 5) == ["sil", "sil", "N", "N", "N"]


def test_join_is_by_key_and_reports_each_side():
    codes = pd.DataFrame(
        [("u1", "a", k, 10 + k, k) for k in range(5)]
        + [("u2", "b", k, 7, 5 + k) for k in range(3)]  # 7 frames of 10 ms -> 3 latents
        + [("u3", "b", k, 1, 8 + k) for k in range(2)],  # no labels for u3
        columns=["utterance_id", "speaker", "frame", "code", "row"],
    )
    labels = pd.DataFrame(
        [("u1", k, f"P{k}") for k in range(5)]
        + [("u2", k, "S") for k in range(4)]  # one label too many: frame 3 has no code
        + [("u4", 0, "T")],
        columns=["utterance_id", "frame", "phone"],
    ).sample(frac=1.0, random_state=0)  # shuffled: the join must not be positional
    joined, report = join(codes, labels)
    assert report.frames == 8
    assert report.only_codes == {"u3": 2}
    assert report.only_labels == {"u2": 1, "u4": 1}
    u1 = joined[joined.utterance_id == "u1"]
    assert u1.code.tolist() == [10, 11, 12, 13, 14]
    assert u1.phone.tolist() == ["P0", "P1", "P2", "P3", "P4"]  # frame k with label k
    assert joined[joined.utterance_id == "u2"].frame.tolist() == [0, 1, 2]


def test_duplicate_keys_are_an_error():
    codes = pd.DataFrame(
        [("u", "s", 0, 1, 0), ("u", "s", 0, 2, 1)],
        columns=["utterance_id", "speaker", "frame", "code", "row"],
    )
    labels = pd.DataFrame([("u", 0, "A")], columns=["utterance_id", "frame", "phone"])
    with pytest.raises(ValueError, match=r"codes: duplicate \(utterance_id, frame\)"):
        join(codes, labels)


def test_batched_encoding_equals_one_at_a_time():
    torch.manual_seed(0)
    model = vqvae(model_params(channels=8, embedding_dim=4, quantizer={"codebook_size": 6}), 5)
    rng = np.random.default_rng(0)
    utts = [
        Utterance(f"u{i}", "s", "test", rng.standard_normal((n, 5)).astype(np.float32), ["sil"] * n)
        for i, n in enumerate([10, 13, 10, 11, 10])
    ]
    norm = Normalizer(np.zeros(5), np.ones(5))
    batched = {e.utterance.utterance_id: e for e in encode(model, utts, norm, "cpu", 32)}
    for u in utts:
        single = next(encode(model, [u], norm, "cpu", 1))
        got = batched[u.utterance_id]
        assert len(got.codes) == len(u.features) // 2
        np.testing.assert_array_equal(got.codes, single.codes)
        np.testing.assert_allclose(got.latents, single.latents, rtol=1e-5, atol=1e-6)


def test_encoding_shard_by_shard_equals_the_whole_split_bit_for_bit():
    from vqspeech.evaluate.encode import solo

    # the last of a length whose count leaves a batch of one runs alone, as in the whole split
    lengths = [("a", 10), ("b", 13), ("c", 10), ("d", 10), ("e", 12), ("f", 12)]
    assert solo(lengths, 2) == {"d", "b"} and solo(lengths, 1) == {i for i, _ in lengths}
    assert solo(lengths, 3) == {"b"}
    torch.manual_seed(0)
    model = vqvae(model_params(channels=8, embedding_dim=4, quantizer={"codebook_size": 6}), 5)
    rng = np.random.default_rng(1)
    utts = [
        Utterance(uid, "s", "test", rng.standard_normal((n, 5)).astype(np.float32), ["sil"] * n)
        for uid, n in lengths
    ]
    norm = Normalizer(np.zeros(5), np.ones(5))
    whole = {e.utterance.utterance_id: e for e in encode(model, utts, norm, "cpu", 2)}
    alone = solo(((u.utterance_id, len(u.features)) for u in utts), 2)
    for shard in (utts[:2], utts[2:5], utts[5:]):  # "c" and "e" now each alone in their shard
        for e in encode(model, shard, norm, "cpu", 2, alone):
            np.testing.assert_array_equal(e.latents, whole[e.utterance.utterance_id].latents)
            np.testing.assert_array_equal(e.codes, whole[e.utterance.utterance_id].codes)


def test_codes_folder_round_trip_and_ungrouped_rows_are_refused(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vqspeech.evaluate.codes import Latents, codebook_table, read_codes, read_frames

    latents = np.arange(12, dtype=np.float32).reshape(4, 3)
    table = pa.table(
        {
            "utterance_id": ["u1", "u1", "u2", "u2"],
            "speaker": ["s"] * 4,
            "frame": [0, 1, 0, 1],
            "code": [1, 0, 1, 1],
            "phone": ["AH", "T", "sil", "S"],
            "latent": pa.FixedSizeListArray.from_arrays(pa.array(latents.reshape(-1)), 3),
        }
    )
    codebook = np.eye(2, 3, dtype=np.float32)
    pq.write_table(table, tmp_path / "codes.parquet")
    pq.write_table(codebook_table(codebook), tmp_path / "codebook.parquet")
    frames, lat, book = read_codes(tmp_path)
    assert frames["code"].tolist() == [1, 0, 1, 1]
    np.testing.assert_array_equal(lat, latents)
    np.testing.assert_array_equal(book, codebook)
    # read forward in parts of any size, batch boundaries of the file included
    reader = Latents(tmp_path, batch_rows=3)
    np.testing.assert_array_equal(
        np.concatenate([reader.next(1), reader.next(0), reader.next(3)]), latents
    )
    with pytest.raises(ValueError, match="past the end"):
        reader.next(1)
    layout = read_frames(tmp_path)
    assert layout.ids.tolist() == ["u1", "u2"] and layout.offsets.tolist() == [0, 2, 4]
    # utterances in any order (the features'), each one's frames together and in order
    pq.write_table(table.take([2, 3, 0, 1]), tmp_path / "codes.parquet")
    assert read_frames(tmp_path).ids.tolist() == ["u2", "u1"]
    for rows in ([1, 0, 2, 3], [0, 2, 3, 1]):
        pq.write_table(table.take(rows), tmp_path / "codes.parquet")
        with pytest.raises(ValueError, match=r"codes\.parquet: rows not grouped by utterance"):
            read_codes(tmp_path)
