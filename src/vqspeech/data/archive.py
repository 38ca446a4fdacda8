"""Zip extraction that refuses members escaping the target folder.

`zipfile.extract` silently rewrites `../` and absolute names; a corpus archive that contains
them is corrupt or hostile, so here it is an error naming the archive and the member.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from vqspeech.io.progress import progress


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder, or is a link."""


def _check_member(archive: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and path.parts[0].endswith(":")):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} has an absolute path")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} escapes the target folder")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link")
    return path


def safe_extract(
    archive: str | Path, dest: str | Path, keep: Callable[[PurePosixPath], bool] = lambda _: True
) -> list[PurePosixPath]:
    """Extract the members of a zip for which `keep(path)` is true; return their paths.

    Every member is checked before anything is written, so a hostile archive writes nothing.
    """
    archive, dest = Path(archive), Path(dest)
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(f"{archive}: not a zip archive ({exc})") from None
    with zf:
        members = [(info, _check_member(archive, info)) for info in zf.infolist()]
        chosen = [(i, p) for i, p in members if not i.is_dir() and keep(p)]
        root = dest.resolve()
        for info, path in progress(chosen, desc=f"extract {archive.name}", unit="file"):
            target = (dest / path).resolve()
            if not target.is_relative_to(root):
                raise UnsafeArchiveError(f"{archive}: member {info.filename!r} escapes {dest}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    return [p for _, p in chosen]
