"""Resumable, verified HTTP downloads.

The bytes go to `<dest>.part`; an interrupted download (a dropped connection, a killed process)
resumes from there with an HTTP Range request, in the same call or the next one. Only a file whose
size and sha256 match is renamed to `dest`. A complete file that does not match the pin (a changed
pin, or a wrong one) is never deleted: it is moved aside to `<dest>.sha256-<first 12 of its hash>`
and, should the pin name that hash again, moved back instead of downloaded. A download that ends
short of the pinned `size` (a dropped connection, announced with a Content-Length or not) is
retried from the `.part` up to `retries` times and, once they are spent, kept for the next run to
resume; only a download that brings more bytes than `size` is deleted. Without a `size` pin, a
body without a Content-Length ends where the connection closes, and the sha256 check decides.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

log = logging.getLogger(__name__)

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """The download failed for good; the message names the URL or file and the cause."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def download(
    url: str,
    dest: str | os.PathLike[str],
    sha256: str,
    size: int | None = None,
    retries: int = 5,
    timeout_s: float = 60.0,
    backoff_s: float = 2.0,
) -> Path:
    """Download `url` to `dest` unless a verified copy is already there; return `dest`.

    Retries dropped connections and HTTP 5xx up to `retries` times, resuming each time.
    Raises DownloadError on a 4xx answer, after the last retry, or on a checksum mismatch.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    aside = _aside(dest, sha256)
    if not dest.exists() and aside.is_file():
        log.info("%s: moving back %s, kept from a run with another pin", dest, aside.name)
        os.replace(aside, dest)
    if dest.exists():
        _verify(dest, dest, sha256, size)
        log.info("%s already downloaded and verified", dest)
        return dest
    part = dest.with_name(dest.name + ".part")
    attempt = 0
    while True:
        try:
            _fetch_into(url, part, size, timeout_s)
            break
        except _Retryable as exc:
            attempt += 1
            if attempt > retries:
                kept = (
                    f"; kept the partial file at {part}, run again to resume it"
                    if part.is_file() and part.stat().st_size
                    else ""
                )
                raise DownloadError(
                    f"{url}: giving up after {retries} retries: {exc}{kept}"
                ) from None
            wait = backoff_s * 2 ** (attempt - 1)
            log.warning("%s: %s; retry %d/%d in %.1f s", url, exc, attempt, retries, wait)
            time.sleep(wait)
    _verify(part, dest, sha256, size)
    os.replace(part, dest)
    return dest


class _Retryable(Exception):
    pass


def _fetch_into(url: str, part: Path, size: int | None, timeout_s: float) -> None:
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        log.warning("%s is larger than the expected %d bytes; starting over", part, size)
        part.unlink()
        have = 0
    if size is not None and have == size:
        return
    request = urllib.request.Request(url, headers={"User-Agent": "vqspeech"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing past `have` on the server
            if size is not None and have < size:  # so its file ends short of the pin
                raise DownloadError(
                    f"{url}: the server's file ends at byte {have} (HTTP 416 for the rest), "
                    f"short of the pinned {size} bytes: the URL or the size pin is wrong; "
                    f"{part} is kept (delete it to download afresh)"
                ) from None
            return  # the partial file is complete
        if exc.code >= 500 or exc.code == 429:
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (OSError, http.client.HTTPException) as exc:  # URLError is an OSError
        raise _Retryable(f"connection failed: {exc}") from None
    with response:
        if have and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != have:
                raise DownloadError(f"{url}: server resumed at byte {start}, asked for {have}")
            mode = "ab"
        else:
            if have:
                log.warning("%s: server ignored the Range request; starting over", url)
            have, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else size
        if size is not None and total is not None and total > size:
            raise DownloadError(
                f"{url}: more than the expected {size} bytes announced ({total}); "
                f"not reading it into {part}"
            )
        received = 0
        with (
            part.open(mode) as f,
            tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=part.name) as bar,
        ):
            try:
                while block := response.read(CHUNK):
                    if size is not None and have + received + len(block) > size:
                        f.close()
                        part.unlink()
                        raise DownloadError(
                            f"{url}: more than the expected {size} bytes arrived; stopped "
                            f"reading and deleted {part}"
                        )
                    f.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as exc:
                raise _Retryable(f"connection lost after {have + received} bytes: {exc}") from None
        # the pin, if any, says where the file ends, even when no Content-Length announced it
        expected = size if size is not None else total
        if expected is not None and have + received < expected:
            raise _Retryable(f"connection closed after {have + received} of {expected} bytes")


def _content_range_start(header: str) -> int:
    # "bytes 100-199/200"
    try:
        return int(header.split()[1].split("-")[0])
    except (IndexError, ValueError):
        raise DownloadError(f"malformed Content-Range header {header!r}") from None


def _aside(dest: Path, digest: str) -> Path:
    return dest.with_name(f"{dest.name}.sha256-{digest[:12]}")


def _verify(path: Path, dest: Path, sha256: str, size: int | None) -> None:
    actual_size = path.stat().st_size
    if path != dest and size is not None and actual_size < size:  # incomplete: keep to resume
        raise DownloadError(
            f"{path}: {actual_size} bytes, expected {size}; kept it, run again to resume"
        )
    if path != dest and size is not None and actual_size > size:
        path.unlink()  # more than the file the pin names: not an archive anyone verified
        raise DownloadError(
            f"{path}: {actual_size} bytes, expected {size}; deleted, run again to re-download"
        )
    digest = sha256_of(path)
    if digest == sha256:
        if size is None or actual_size == size:
            return
        # the file is the one the hash names: the size pin is what is wrong; keep the file
        raise DownloadError(
            f"{path}: has the pinned sha256 but {actual_size} bytes, not the pinned {size}; "
            "the size pin is wrong (kept the file)"
        )
    # `dest` was verified by an earlier run, so only the pin changed (or is wrong): a download of
    # 11.7 GB must not be lost to an edit of params.yaml.
    aside = _aside(dest, digest)
    os.replace(path, aside)
    raise DownloadError(
        f"{path}: sha256 {digest} does not match the expected {sha256}; moved it to {aside} "
        "(moved back if the pin names it again; delete it if not needed), run again to download "
        "the file the pin names"
    )
