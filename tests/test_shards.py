"""The shard folder's index: readers take the shards the features stage wrote and nothing else;
a duplicated utterance or a NaN feature stops the stats stage naming the shard and utterance."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vqspeech.features import shards

from .conftest import REPO, params_yaml

DIM = 39


def utterances(prefix: str, n: int, split: str = "train") -> list[shards.Utterance]:
    rng = np.random.default_rng(len(prefix) + n)
    return [
        shards.Utterance(
            f"{prefix}{i}",
            "spk",
            split,
            rng.standard_normal((20 + i, DIM)).astype(np.float32),
            ["AH"] * (20 + i),
        )
        for i in range(n)
    ]


def folder(tmp_path: Path) -> Path:
    out = tmp_path / "features"
    shards.write(out / "part-00000.parquet", utterances("a", 3), DIM)
    shards.write(out / "part-00001.parquet", utterances("b", 2), DIM)
    return out


def test_index_lists_what_was_written(tmp_path: Path):
    out = folder(tmp_path)
    index = json.loads((out / shards.INDEX).read_text())
    assert index == {"shards": {"part-00000.parquet": 3, "part-00001.parquet": 2}}
    assert shards.files(out) == [out / "part-00000.parquet", out / "part-00001.parquet"]


def test_a_stray_copy_of_a_shard_is_not_read(tmp_path: Path, caplog):
    out = folder(tmp_path)
    shutil.copyfile(out / "part-00000.parquet", out / "part-00000 (copy).parquet")
    with caplog.at_level("WARNING"):
        found = shards.files(out)
    assert [p.name for p in found] == ["part-00000.parquet", "part-00001.parquet"]
    assert "not read: part-00000 (copy).parquet" in caplog.text
    ids = [u.utterance_id for u in shards.iter_utterances(out)]
    assert ids == ["a0", "a1", "a2", "b0", "b1"]  # 5, not 8


def test_index_errors_name_the_folder(tmp_path: Path):
    out = folder(tmp_path)
    (out / "part-00001.parquet").unlink()
    with pytest.raises(shards.ShardError, match=r"listed in index\.json are missing: part-00001"):
        shards.files(out)
    (out / shards.INDEX).unlink()
    with pytest.raises(shards.ShardError, match=r"features: no index\.json"):
        shards.files(out)
    (out / shards.INDEX).write_text("{")
    with pytest.raises(shards.ShardError, match=r"index\.json: not a shard index"):
        shards.files(out)


def stats(tmp_path: Path, features: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "params.yaml").write_text(params_yaml())
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / "stats.py"), "--features", str(features)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_stats_stops_on_an_utterance_in_two_shards(tmp_path: Path):
    out = folder(tmp_path)
    shards.write(out / "part-00002.parquet", utterances("a", 1), DIM)  # a0 again
    result = stats(tmp_path, out)
    assert result.returncode == 1, result.stderr
    assert "part-00002.parquet: utterance 'a0' is also in part-00000.parquet" in result.stderr
    assert not (tmp_path / "data" / "stats.json").exists()


def test_stats_stops_on_nan_features_naming_shard_and_utterance(tmp_path: Path):
    out = tmp_path / "features"
    bad = utterances("c", 3)
    bad[1].features[4, 7] = np.nan
    shards.write(out / "part-00000.parquet", bad, DIM)
    result = stats(tmp_path, out)
    assert result.returncode == 1, result.stderr
    assert (
        "part-00000.parquet: utterance 'c1' has 1 NaN/infinite feature values (the first "
        "at frame 4, dimension 7)"
    ) in result.stderr
    assert not (tmp_path / "data" / "stats.json").exists()
