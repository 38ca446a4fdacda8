from __future__ import annotations

import stat
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from vqspeech.data.archive import UnsafeArchiveError, safe_extract


def make_zip(path: Path, members: dict[str, bytes], symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_extracts_chosen_members(tmp_path: Path):
    archive = make_zip(tmp_path / "a.zip", {"d/x.flac": b"1", "d/y.txt": b"2", "e/z.flac": b"3"})
    got = safe_extract(archive, tmp_path / "out", keep=lambda p: p.suffix == ".flac")
    assert got == [PurePosixPath("d/x.flac"), PurePosixPath("e/z.flac")]
    assert (tmp_path / "out/d/x.flac").read_bytes() == b"1"
    assert not (tmp_path / "out/d/y.txt").exists()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../escape.flac", "escapes the target folder"),
        ("d/../../escape.flac", "escapes the target folder"),
        ("/abs/escape.flac", "absolute path"),
    ],
)
def test_path_traversal_is_rejected_before_writing(tmp_path: Path, name: str, why: str):
    archive = make_zip(tmp_path / "evil.zip", {"d/ok.flac": b"1", name: b"x"})
    out = tmp_path / "deep" / "out"
    with pytest.raises(UnsafeArchiveError, match=rf"evil\.zip: member .* {why}"):
        safe_extract(archive, out)
    assert not out.exists()  # nothing written, not even the good member
    assert not (tmp_path / "deep" / "escape.flac").exists()


def test_symlink_member_is_rejected(tmp_path: Path):
    archive = make_zip(tmp_path / "link.zip", {"d/ok.flac": b"1"}, symlink="d/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        safe_extract(archive, tmp_path / "out")


def test_not_a_zip(tmp_path: Path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(UnsafeArchiveError, match=r"bad\.zip: not a zip archive"):
        safe_extract(bad, tmp_path / "out")
