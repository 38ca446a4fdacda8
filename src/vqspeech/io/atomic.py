"""Atomic outputs: write beside the target, then rename; a failure leaves nothing half-written.

A write that fails for want of space inside one of these (the disk full, a quota) is re-raised
as a WriteError naming the output and the space left, where the OS error names no file.

A process killed outright (SIGKILL, the OOM killer) cannot clean up: its `.{name}.XXXXXXXX.tmp`
and `.{name}.old-<pid>` stay beside the target until `remove_stale` is called for it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


class WriteError(OSError):
    """Writing an output failed for want of space (a full disk, a quota, a file too large): the
    message names the output and the space left on its file system."""

    def __str__(self) -> str:
        return str(self.args[0])


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


# numpy's tofile() reports a short write without an errno
_SHORT_WRITE = re.compile(r"\d+ requested and \d+ written")


def _naming(exc: OSError, target: Path, what: str) -> OSError:
    """`exc` as a WriteError naming `what` (writing `target`) when it is a failed write for
    want of space that names no file: "No space left on device" (a quota, a file too large), or
    numpy's "76284 requested and 24095 written". Any other error is left as it is."""
    if isinstance(exc, WriteError) or exc.filename is not None:
        return exc
    if exc.errno in _NO_SPACE:
        why = exc.strerror or str(exc)
    elif exc.errno is None and _SHORT_WRITE.search(str(exc)):
        why = f"write failed ({exc}): the disk is likely full"
    else:
        return exc
    try:
        free = f"{shutil.disk_usage(target.parent).free / 2**20:.0f} MiB free there"
    except OSError:
        free = "free space unknown"
    err = WriteError(f"{what}: {why} while writing it ({free})")
    err.errno = exc.errno
    return err


@contextlib.contextmanager
def _named_errors(target: Path, what: str | None = None) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        named = _naming(exc, target, what or str(target))
        if named is exc:
            raise
        raise named from exc


# A temporary's name is the target's with 14-18 bytes around it; a file system allows 255, so a
# long name (a 240-character file stem) is cut to this many bytes in it
_STEM_CHARS = 200


def _stem(target: Path) -> str:
    """The target's name cut to _STEM_CHARS bytes (the limit is in bytes: `é` takes two)."""
    return os.fsencode(target.name)[:_STEM_CHARS].decode(errors="ignore")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary file path next to `target`; on success it replaces `target`.

    On an exception the temporary file is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{_stem(target)}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _named_errors(target):
            yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write `data` to `target`."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 `text` to `target`."""
    write_bytes(target, text.encode("utf-8"))


def _sibling_dir(target: Path) -> Path:
    """A new empty `.{name}.XXXXXXXX.tmp` directory beside `target` (what `remove_stale` knows)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{_stem(target)}.", suffix=".tmp", dir=target.parent))


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory next to `target`; on success it replaces `target`.

    The old `target` (if any) is removed only once the new one is complete. On an exception the
    temporary directory is removed and `target` is left as it was.
    """
    target = Path(target)
    tmp = _sibling_dir(target)
    old = None
    try:
        with _named_errors(target):
            yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
        if target.exists():
            old = target.with_name(f".{_stem(target)}.old-{os.getpid()}")
            os.replace(target, old)
        try:
            os.replace(tmp, target)
        except BaseException:
            if old is not None:  # without this, a failed rename would leave no `target` at all
                os.replace(old, target)
                old = None
            raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def scratch_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory next to `target` for a stage's intermediate files,
    removed on exit whatever happens; a killed run's is removed by `remove_stale(target)`."""
    tmp = _sibling_dir(Path(target))
    try:
        with _named_errors(tmp, f"{target}'s scratch folder {tmp}"):
            yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_stale(*targets: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries that killed runs of atomic_path/atomic_dir/scratch_dir left beside
    `targets`.

    Only `.{name}.XXXXXXXX.tmp` (tempfile's 8 random characters) and `.{name}.old-<pid>` match.
    Call it before writing a target, when no other process writes it (a stage's start: DVC locks
    the workspace while a stage runs). Returns the removed paths, each also logged.
    """
    by_parent: dict[Path, list[str]] = {}
    for target in map(Path, targets):
        by_parent.setdefault(target.parent, []).append(re.escape(_stem(target)))
    removed = []
    for parent, names in by_parent.items():  # one listing per folder, however many targets
        if not parent.is_dir():
            continue
        pattern = re.compile(rf"\.(?:{'|'.join(names)})\.(?:[a-z0-9_]{{8}}\.tmp|old-[0-9]+)")
        for path in sorted(parent.iterdir()):
            if not pattern.fullmatch(path.name):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            log.warning("removed %s, left by an interrupted run", path)
            removed.append(path)
    return removed
