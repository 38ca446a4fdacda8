from __future__ import annotations

import numpy as np
import pytest

from vqspeech.data import builtin
from vqspeech.features.shards import Utterance
from vqspeech.features.split import SplitError, assign, held_out
from vqspeech.features.stats import NORM_BLOCK, DatasetSummary, Moments, Normalizer
from vqspeech.params import SplitParams

from .conftest import DEFAULTS

SPEAKERS = ["awb", "awb_high", "rms", "rms_high", "slt", "kal16"]


def test_split_is_speaker_disjoint_and_order_free():
    a = assign(SPEAKERS, ["slt"], ["rms", "rms_high"])
    b = assign(reversed(SPEAKERS * 3), ["slt"], ["rms", "rms_high"])
    assert a == b
    assert a == {
        "awb": "train",
        "awb_high": "train",
        "kal16": "train",
        "rms": "test",
        "rms_high": "test",
        "slt": "val",
    }


def test_unnamed_split_is_the_builtin_corpus_own():
    own = builtin.held_out(DEFAULTS.data.builtin)
    unnamed = SplitParams(val_speakers=None, test_speakers=None)
    val, test = held_out(unnamed, own)
    assert (val, test) == own and len(test) == 12
    named = SplitParams(val_speakers=[], test_speakers=["rms-0"])
    assert held_out(named, own) == ([], ["rms-0"])  # named speakers win
    with pytest.raises(SplitError, match="test_speakers is empty"):
        assign(["a", "b"], *held_out(unnamed, None))  # any other corpus must name them


@pytest.mark.parametrize(
    ("val", "test", "pattern"),
    [
        (["slt"], ["slt"], r"both val and test: \['slt'\]"),
        (["p225"], ["rms"], r"not in the corpus: \['p225'\]"),
        (SPEAKERS[:3], SPEAKERS[3:], "none is left for training"),
    ],
)
def test_split_errors(val, test, pattern):
    with pytest.raises(SplitError, match=pattern):
        assign(SPEAKERS, val, test)


def test_streaming_moments_equal_one_shot():
    rng = np.random.default_rng(0)
    batches = [1000 + 5 * rng.standard_normal((n, 7)) for n in (1, 13, 500, 2, 77)]
    m = Moments(7)
    for b in batches:
        m.update(b)
    m.update(np.zeros((0, 7)))
    whole = np.concatenate(batches)
    assert m.n == len(whole)
    np.testing.assert_allclose(m.mean, whole.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m.std, whole.std(axis=0), rtol=1e-9)


def test_dataset_summary_counts():
    s = DatasetSummary(hop_s=0.01, window=4)
    phones = [
        "sil",
        "sil",
        "AH",
        "T",
        "T",
        "T",
        "S",
        "sil",
        "sil",
    ]  # windows: {sil,AH,T}, {T,S,sil}
    s.add(Utterance("u1", "a", "train", np.zeros((9, 2), np.float32), phones))
    s.add(Utterance("u2", "b", "test", np.zeros((3, 2), np.float32), ["AH"] * 3))  # no full window
    d = s.as_dict()
    assert d["splits"]["train"] == {
        "hours": round(9 * 0.01 / 3600, 4),
        "utterances": 1,
        "speakers": 1,
        "frames": 9,
        "silence_share": round(4 / 9, 4),
        "distinct_phones_per_window": 3.0,
    }
    assert d["splits"]["test"]["distinct_phones_per_window"] is None
    assert d["total"]["frames"] == 12 and d["total"]["speakers"] == 2
    assert d["frames_per_phone"] == {"AH": 4, "S": 1, "T": 3, "sil": 4}
    assert {"phone": "T", "split": "train", "frames": 3} in s.phone_rows()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalizer_standardizes_a_block_at_a_time_to_the_same_bits(dtype):
    rng = np.random.default_rng(1)
    norm = Normalizer(rng.standard_normal(5) * 3, rng.uniform(0.5, 2.0, 5))
    x = (rng.standard_normal((2 * NORM_BLOCK + 7, 5)) * 4 + 1).astype(np.float32)
    got = norm(x, dtype)
    assert got.dtype == dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, ((x - norm.mean) / norm.std).astype(dtype))
    np.testing.assert_array_equal(norm(x[:3], dtype), got[:3])  # small arrays: one block
    with pytest.raises(ValueError, match="features of 4 dims, statistics of 5"):
        norm(x[:, :4])
