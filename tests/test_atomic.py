import contextlib
import os
import stat
from pathlib import Path

import pytest

from vqspeech.io import atomic


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


def test_remove_stale_removes_only_leftovers_of_that_target(tmp_path: Path):
    """What a killed atomic_dir/atomic_path leaves beside its target, and nothing else."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "kept.wav").write_text("the current output")
    stale_dir = tmp_path / ".raw.k3x_9q2a.tmp"
    (stale_dir / "wav").mkdir(parents=True)
    (stale_dir / "wav" / "a.wav").write_text("half-built")
    stale_old = tmp_path / ".raw.old-4242"
    stale_old.mkdir()
    stale_file = tmp_path / ".manifest.parquet.ab12cd34.tmp"
    stale_file.write_text("half-written")
    others = [
        ".rawer.k3x_9q2a.tmp",  # another target's
        ".raw.part",
        ".raw.old-x",
        "raw.k3x_9q2a.tmp",
        ".manifestXparquet.ab12cd34.tmp",
        ".raw.toolongname.tmp",
    ]
    for name in others:
        (tmp_path / name).write_text("not ours")
    removed = atomic.remove_stale(tmp_path / "raw") + atomic.remove_stale(
        tmp_path / "manifest.parquet"
    )
    assert sorted(removed) == sorted([stale_dir, stale_old, stale_file])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["raw", *others])
    assert (tmp_path / "raw" / "kept.wav").read_text() == "the current output"
    assert atomic.remove_stale(tmp_path / "absent" / "raw") == []


def test_failed_swap_puts_the_old_dir_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "raw"
    with atomic.atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    real_replace = os.replace

    def replace(src, dst):
        if Path(src).name.endswith(".tmp"):
            raise OSError("injected: rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="injected"), atomic.atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_scratch_dir_is_removed_on_exit_and_a_killed_runs_by_remove_stale(tmp_path: Path):
    target = tmp_path / "reports/eval.json"
    for fail in (False, True):
        with pytest.raises(RuntimeError) if fail else contextlib.nullcontext():  # noqa: SIM117
            with atomic.scratch_dir(target) as scratch:
                assert scratch.parent == target.parent and scratch.name.startswith(".eval.json.")
                (scratch / "block.0.bin").write_bytes(b"x")
                if fail:
                    raise RuntimeError("interrupted")
        assert not scratch.exists()
    left = target.parent / ".eval.json.k1l2m3n4.tmp"  # what a killed run leaves
    (left / "sub").mkdir(parents=True)
    assert atomic.remove_stale(target) == [left] and not left.exists()


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_a_long_target_name_gets_a_temporary_that_fits(tmp_path: Path, kind: str):
    """A 250-character name (the file system's limit is 255): the temporary beside it is cut."""
    target = tmp_path / ("x" * 120 + "é" * 60 + ".TextGrid")  # 249 bytes
    if kind == "file":
        atomic.write_text(target, "ok")
        assert target.read_text() == "ok"
    else:
        for _ in range(2):  # the second run moves the first aside under a cut name too
            with atomic.atomic_dir(target) as tmp:
                (tmp / "f").write_text("ok")
        assert (target / "f").read_text() == "ok"
    stale = tmp_path / f".{'x' * 120 + 'é' * 40}.abcd1234.tmp"  # its first 200 bytes
    stale.write_text("left by a killed run")
    assert atomic.remove_stale(target) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_a_full_disk_names_the_output_and_the_space_left(tmp_path: Path):
    """/dev/full fails every write with ENOSPC, as a full disk does: the error names the output."""
    target = tmp_path / "model.pt"
    with (
        pytest.raises(atomic.WriteError) as err,
        atomic.atomic_path(target),
        open("/dev/full", "wb") as f,
    ):
        f.write(b"weights")
    assert str(err.value).startswith(f"{target}: No space left on device while writing it (")
    assert "MiB free there" in str(err.value) and err.value.errno == 28
    assert list(tmp_path.iterdir()) == []


def test_numpy_short_write_in_a_scratch_folder_names_it(tmp_path: Path):
    """numpy's "N requested and M written" (no errno, no file) becomes a message naming where."""
    import numpy as np

    with (
        pytest.raises(
            atomic.WriteError,
            match=r"report\.json's scratch folder .*\.report\.json\.\w{8}\.tmp: write failed "
            r"\(1000 requested and 0 written\): the disk is likely full",
        ),
        atomic.scratch_dir(tmp_path / "report.json"),
        open("/dev/full", "wb") as f,
    ):
        np.ones(1000).tofile(f)
    assert list(tmp_path.iterdir()) == []


def test_errors_that_name_a_file_pass_unchanged(tmp_path: Path):
    with pytest.raises(FileNotFoundError) as err, atomic.atomic_path(tmp_path / "out.txt"):
        (tmp_path / "missing.txt").read_text()
    assert err.value.filename == str(tmp_path / "missing.txt")


def test_other_errors_without_a_file_are_not_called_a_full_disk(tmp_path: Path):
    """A read error inside a stage's output folder (a corrupt input, a dropped connection)."""
    with (
        pytest.raises(OSError, match="Couldn't deserialize thrift") as err,
        atomic.atomic_dir(tmp_path / "codes"),
    ):
        raise OSError("Couldn't deserialize thrift: TProtocolException")
    assert not isinstance(err.value, atomic.WriteError)
