import os
import stat
from pathlib import Path

import pytest

from vqspeech import atomic


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_atomic_file_replaces_only_on_success(tmp_path: Path):
    target = tmp_path / "out.json"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError), atomic.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_dir_replaces_only_on_success(tmp_path: Path):
    target = tmp_path / "raw"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic.atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic.atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_outputs_get_the_umask_mode_not_the_tempfile_mode(tmp_path: Path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "f", "x")
        with atomic.atomic_dir(tmp_path / "d"):
            pass
    finally:
        os.umask(old)
    assert mode(tmp_path / "f") == 0o644
    assert mode(tmp_path / "d") == 0o755
