"""The downloader against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from vqspeech.data.fetch import DownloadError, download

from .conftest import Server

PAYLOAD = bytes(range(256)) * 4096 + b"tail"  # ~1 MiB, not a multiple of the chunk size
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def fetch(server: Server, dest: Path, **kwargs) -> Path:
    kwargs.setdefault("size", len(PAYLOAD))
    kwargs.setdefault("retries", 3)
    return download(server.url, dest, SHA, backoff_s=0.01, timeout_s=5, **kwargs)


def test_plain_download(http_server: Server, tmp_path: Path):
    http_server.payload = PAYLOAD
    out = fetch(http_server, tmp_path / "c.zip")
    assert out.read_bytes() == PAYLOAD
    assert not (tmp_path / "c.zip.part").exists()


def test_connection_cut_then_resumed_with_range(http_server: Server, tmp_path: Path):
    http_server.payload = PAYLOAD
    http_server.cut_after = 300_000
    out = fetch(http_server, tmp_path / "c.zip")
    assert out.read_bytes() == PAYLOAD
    assert len(http_server.requests) == 2
    assert "Range" not in http_server.requests[0]
    assert http_server.requests[1]["Range"] == "bytes=300000-"


def test_stream_cut_short_of_the_pinned_size_is_resumed(http_server: Server, tmp_path: Path):
    """Without a Content-Length an early close looks like the end of the body; the pinned size says
    it is not, so the `.part` is resumed with a Range request instead of deleted."""
    http_server.payload = PAYLOAD
    http_server.send_length = False
    http_server.cut_after = 600_000
    out = fetch(http_server, tmp_path / "c.zip", retries=1)
    assert out.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in http_server.requests] == [None, "bytes=600000-"]
    assert not (tmp_path / "c.zip.part").exists()


def test_stream_cut_after_the_last_retry_keeps_the_part(http_server: Server, tmp_path: Path):
    """Once the retries are spent the partial file stays (for VCTK it can be gigabytes) and the
    next run resumes it."""
    http_server.payload = PAYLOAD
    http_server.send_length = False
    http_server.cut_after = 600_000
    part = tmp_path / "c.zip.part"
    with pytest.raises(
        DownloadError, match=rf"giving up after 0 retries: .*600000 of {len(PAYLOAD)} bytes"
    ) as err:
        fetch(http_server, tmp_path / "c.zip", retries=0)
    assert f"kept the partial file at {part}, run again to resume it" in str(err.value)
    assert part.read_bytes() == PAYLOAD[:600_000]
    out = fetch(http_server, tmp_path / "c.zip", retries=0)  # cut_after applied once: a good server
    assert out.read_bytes() == PAYLOAD and not part.exists()
    assert [r.get("Range") for r in http_server.requests] == [None, "bytes=600000-"]


def test_part_short_of_a_file_the_server_ends_early_is_kept(http_server: Server, tmp_path: Path):
    """A server whose file ends before the pinned size (416 on the resume) leaves the `.part` as
    it is, and says that the URL or the pin is wrong: running again would not help."""
    http_server.payload = PAYLOAD[:600_000]
    part = tmp_path / "c.zip.part"
    part.write_bytes(PAYLOAD[:600_000])
    with pytest.raises(
        DownloadError,
        match=r"file ends at byte 600000 \(HTTP 416 for the rest\), "
        r"short of the pinned \d+ bytes: the URL or the size pin is wrong; .*c\.zip"
        r"\.part is kept",
    ):
        fetch(http_server, tmp_path / "c.zip")
    assert part.read_bytes() == PAYLOAD[:600_000]


def test_interrupted_run_resumes_next_run(http_server: Server, tmp_path: Path):
    """A partial file left by a killed process is resumed, not downloaded again."""
    http_server.payload = PAYLOAD
    (tmp_path / "c.zip.part").write_bytes(PAYLOAD[:123_456])
    out = fetch(http_server, tmp_path / "c.zip")
    assert out.read_bytes() == PAYLOAD
    assert [r.get("Range") for r in http_server.requests] == ["bytes=123456-"]


def test_server_ignoring_range_restarts_cleanly(http_server: Server, tmp_path: Path):
    http_server.payload = PAYLOAD
    http_server.honour_range = False
    (tmp_path / "c.zip.part").write_bytes(b"garbage that must not be kept")
    assert fetch(http_server, tmp_path / "c.zip").read_bytes() == PAYLOAD


def test_wrong_checksum_fails_and_keeps_the_file_aside(http_server: Server, tmp_path: Path):
    """A complete download that matches the size but not the pin may be right where the pin is
    wrong: it is kept, named by its own hash, never deleted."""
    other = PAYLOAD[:-1] + b"X"  # same size, other bytes
    http_server.payload = other
    aside = tmp_path / f"c.zip.sha256-{hashlib.sha256(other).hexdigest()[:12]}"
    with pytest.raises(DownloadError, match=r"c\.zip\.part: sha256 .* does not match") as err:
        fetch(http_server, tmp_path / "c.zip")
    assert str(aside) in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == [aside.name]
    assert aside.read_bytes() == other


def test_pin_change_keeps_the_verified_archive(http_server: Server, tmp_path: Path):
    """Changing the pin in params never deletes an archive an earlier run verified; pinning it
    again reuses it without a download."""
    http_server.payload = PAYLOAD
    fetch(http_server, tmp_path / "c.zip")
    aside = tmp_path / f"c.zip.sha256-{SHA[:12]}"
    with pytest.raises(
        DownloadError, match=r"c\.zip: sha256 .* does not match the expected 0+"
    ) as err:
        download(http_server.url, tmp_path / "c.zip", "0" * 64, size=len(PAYLOAD))
    assert f"moved it to {aside}" in str(err.value)
    assert aside.read_bytes() == PAYLOAD and not (tmp_path / "c.zip").exists()
    # the archive the hash names, with a wrong size pin: kept in place, not moved back and forth
    with pytest.raises(
        DownloadError,
        match=r"c\.zip: has the pinned sha256 but \d+ bytes, not "
        r"the pinned 5; the size pin is wrong",
    ):
        fetch(http_server, tmp_path / "c.zip", size=5)
    assert (tmp_path / "c.zip").read_bytes() == PAYLOAD and not aside.exists()
    assert fetch(http_server, tmp_path / "c.zip").read_bytes() == PAYLOAD
    assert len(http_server.requests) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.zip"]


@pytest.mark.parametrize("send_length", [True, False], ids=["announced", "streamed"])
def test_more_bytes_than_size_stops_the_download(
    http_server: Server, tmp_path: Path, send_length: bool
):
    http_server.payload = PAYLOAD * 8
    http_server.send_length = send_length
    with pytest.raises(
        DownloadError, match=r"corpus\.zip: more than the expected \d+ bytes"
    ) as err:
        fetch(http_server, tmp_path / "c.zip", retries=0)
    assert "c.zip.part" in str(err.value)
    assert not (tmp_path / "c.zip").exists()
    assert not (tmp_path / "c.zip.part").exists()  # nothing of the oversized answer is kept


def test_transient_server_errors_are_retried(http_server: Server, tmp_path: Path):
    http_server.payload = PAYLOAD
    http_server.status_failures = [503, 500]
    assert fetch(http_server, tmp_path / "c.zip").read_bytes() == PAYLOAD
    assert len(http_server.requests) == 3


def test_persistent_server_error_gives_up(http_server: Server, tmp_path: Path):
    http_server.payload = PAYLOAD
    http_server.status_failures = [500] * 10
    with pytest.raises(DownloadError, match=r"corpus\.zip: giving up after 2 retries: HTTP 500"):
        fetch(http_server, tmp_path / "c.zip", retries=2)
    assert len(http_server.requests) == 3
    assert not (tmp_path / "c.zip").exists()


def test_not_found_fails_at_once(http_server: Server, tmp_path: Path):
    http_server.status_failures = [404]
    with pytest.raises(DownloadError, match=r"corpus\.zip: HTTP 404"):
        fetch(http_server, tmp_path / "c.zip")
    assert len(http_server.requests) == 1


def test_verified_file_is_not_downloaded_again(http_server: Server, tmp_path: Path):
    http_server.payload = PAYLOAD
    fetch(http_server, tmp_path / "c.zip")
    fetch(http_server, tmp_path / "c.zip")
    assert len(http_server.requests) == 1


def test_unreachable_server(tmp_path: Path):
    with pytest.raises(DownloadError, match="connection failed"):
        download("http://127.0.0.1:9/none.zip", tmp_path / "x", SHA, retries=1, backoff_s=0.01)
