from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.synthesis.units import Coder, stored_codes


def utterance(uid: str, frames: int) -> Utterance:
    return Utterance(uid, "s", "test", np.zeros((frames, 3), np.float32), ["a"] * frames)


def test_held_out_codes_are_aligns_own_in_frame_order(tmp_path: Path):
    """The resynthesized held-out codes are read from align's codes.parquet (frames out of order
    there come back in order), not encoded again; a count that does not fit is named."""
    rows = [("u1", 1, 7, [1.0, 0.0]), ("u2", 0, 3, [0.0, 1.0]), ("u1", 0, 5, [0.5, 0.5])]
    table = pa.table(
        {
            "utterance_id": [r[0] for r in rows],
            "frame": [r[1] for r in rows],
            "code": [r[2] for r in rows],
            "latent": pa.array([r[3] for r in rows], type=pa.list_(pa.float32(), 2)),
        }
    )
    pq.write_table(table, tmp_path / "codes.parquet")
    stored = stored_codes(tmp_path, ["u1"])
    assert list(stored) == ["u1"] and stored["u1"][0].tolist() == [5, 7]
    np.testing.assert_array_equal(stored["u1"][1], [[0.5, 0.5], [1.0, 0.0]])
    model = SimpleNamespace(quantizer=SimpleNamespace(codebook_size=8))
    norm = Normalizer(np.zeros(3), np.ones(3))
    coder = Coder(["vqvae"], model, norm, tmp_path, tmp_path, seed=0)  # type: ignore[arg-type]
    assert coder.codes([utterance("u1", 4)], stored)["vqvae"][0].tolist() == [5, 7]
    with pytest.raises(ValueError, match="u1: 2 stored codes for 6 frames"):
        coder.codes([utterance("u1", 6)], stored)
    with pytest.raises(ValueError, match=r"codes\.parquet: no codes of u3"):
        stored_codes(tmp_path, ["u3"])
