"""Faults around the download and features stages: killed runs, late failures, bad files."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vqspeech.data import manifest
from vqspeech.io import atomic

from .conftest import REPO, params_yaml, write_grid, write_wav

BUILTIN = {
    "preset": "flite12",
    "voices": ["kal16"],
    "variants": [{"name": "base", "f0_scale": 1.0, "tempo": 1.0}],
    "utterances_per_speaker": 2,
}
OUTPUTS = (
    "data/raw",
    "data/manifest.parquet",
    "data/download_report.json",
    "metrics/download.json",
)


def write_params(cwd: Path, data: dict, **sections: dict) -> None:
    (cwd / "params.yaml").write_text(params_yaml(data=data, **sections))


def stage(name: str) -> list[str]:
    return [sys.executable, str(REPO / "stages" / f"{name}.py")]


def run(cwd: Path, name: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        stage(name), cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


def folder_corpus(
    root: Path, speakers: tuple[str, ...] = ("spk1", "spk2"), n: int = 2, seconds: float = 0.5
) -> dict:
    for spk in speakers:
        for i in range(n):
            write_wav(root / spk / f"{spk}_{i}.wav", seconds)
            write_grid(root / spk / f"{spk}_{i}.TextGrid", seconds)
    return {"corpus": "folder", "folder": {"audio_dir": str(root)}, "builtin": BUILTIN}


def dot_files(cwd: Path) -> list[str]:
    return sorted(
        str(p.relative_to(cwd))
        for d in ("data", "metrics")
        if (cwd / d).is_dir()
        for p in (cwd / d).iterdir()
        if p.name.startswith(".")
    )


def kill_when(cwd: Path, name: str, ready) -> None:
    """Start stage `name` and SIGKILL it (and its workers) as soon as `ready()` is true."""
    proc = subprocess.Popen(
        stage(name),
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None, f"{name} ended (rc {proc.returncode}) before it was killed"
            assert time.monotonic() < deadline, f"{name} never got far enough to be killed"
            time.sleep(0.005)
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have ended: keep the real error
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# --- 5: a killed run leaves temporaries; the next run removes them -----------------------------


def test_killed_download_leaves_temporaries_that_the_next_run_removes(tmp_path: Path):
    many = {**BUILTIN, "utterances_per_speaker": 12}
    write_params(tmp_path, {"corpus": "builtin", "jobs": 1, "builtin": many})

    def some_audio_written() -> bool:
        return any(p.is_dir() and any(p.rglob("*.wav")) for p in (tmp_path / "data").glob(".*"))

    kill_when(tmp_path, "download", some_audio_written)
    leftovers = dot_files(tmp_path)
    assert [p for p in leftovers if p.startswith("data/.raw.") and p.endswith(".tmp")], leftovers

    write_params(tmp_path, {"corpus": "builtin", "builtin": BUILTIN})
    proc = run(tmp_path, "download")
    assert proc.returncode == 0, proc.stderr
    assert dot_files(tmp_path) == []
    for p in leftovers:
        assert f"removed {p}, left by an interrupted run" in proc.stderr
    assert manifest.read(tmp_path / "data/manifest.parquet").num_rows == 2


FEATURES = {"split": {"test_speakers": ["spk2"]}}


def test_killed_features_leaves_temporaries_that_the_next_run_removes(tmp_path: Path):
    # enough audio, on one worker, that the stage is still extracting when the test looks
    corpus = folder_corpus(tmp_path / "corpus", n=60, seconds=2.0)
    write_params(tmp_path, corpus, features={**FEATURES, "jobs": 1})
    assert run(tmp_path, "download").returncode == 0

    kill_when(tmp_path, "features", lambda: any((tmp_path / "data").glob(".features.*.tmp")))
    (tmp_path / "data/.features_report.json.abc_1234.tmp").write_text("{")  # killed mid-write
    (tmp_path / "data/.features.old-99999").mkdir()  # killed while the old output was removed
    leftovers = dot_files(tmp_path)
    assert len(leftovers) >= 3, leftovers

    proc = run(tmp_path, "features")
    assert proc.returncode == 0, proc.stderr
    assert dot_files(tmp_path) == []
    for p in leftovers:
        assert f"removed {p}, left by an interrupted run" in proc.stderr
    assert json.loads((tmp_path / "data/features_report.json").read_text())["utterances"] == 120


def test_git_ignores_the_temporaries():
    names = [
        "data/.raw.k3x_9q2a.tmp/wav/a.wav",
        "data/.features.old-1234/part-00000.parquet",
        "data/.manifest.parquet.ab12cd34.tmp",
        "metrics/.download.json.ab12cd34.tmp",
    ]
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", *names],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.split() == names


# --- 11: a failed download leaves the old outputs, all of them ---------------------------------


def load_download_stage():
    spec = importlib.util.spec_from_file_location("download_stage", REPO / "stages/download.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def snapshot(cwd: Path) -> dict[str, bytes]:
    files = {}
    for out in OUTPUTS:
        path = cwd / out
        for f in [path] if path.is_file() else sorted(path.rglob("*")):
            if f.is_file():
                files[str(f.relative_to(cwd))] = f.read_bytes()
    return files


def fail_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    def summary(*args: object) -> dict:
        raise OSError("injected: disk full")

    monkeypatch.setattr(manifest, "summary", summary)


def fail_raw_swap(monkeypatch: pytest.MonkeyPatch) -> None:
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "raw" and Path(src).name.endswith(".tmp"):
            raise OSError("injected: rename failed")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)


@pytest.mark.parametrize("inject", [fail_summary, fail_raw_swap], ids=["summary", "raw-swap"])
def test_failed_download_leaves_every_old_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inject
):
    download = load_download_stage()
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, folder_corpus(tmp_path / "corpus", ("spk1",)))
    paths = {
        "params_file": Path("params.yaml"),
        "raw_dir": Path("data/raw"),
        "manifest_path": Path("data/manifest.parquet"),
        "report_path": Path("data/download_report.json"),
        "metrics_path": Path("metrics/download.json"),
    }
    download.main(**paths)
    before = snapshot(tmp_path)
    assert len(before) == 3 + 4  # the manifest, report, metrics, and 2 wavs + 2 TextGrids

    folder_corpus(tmp_path / "corpus", ("spk2",))  # a new speaker: every output would change
    inject(monkeypatch)
    with pytest.raises(SystemExit) as exit_:
        download.main(**paths)
    assert exit_.value.code == 1
    assert snapshot(tmp_path) == before
    assert dot_files(tmp_path) == []


# --- 7: an undecodable transcript is a listed skip of the stage --------------------------------


def test_undecodable_transcript_is_listed_in_the_report(tmp_path: Path):
    data = folder_corpus(tmp_path / "corpus")
    (tmp_path / "corpus/spk1/spk1_1.lab").write_bytes(b"caf\xe9\n")
    write_params(tmp_path, data)
    proc = run(tmp_path, "download")
    assert proc.returncode == 1
    assert "spk1_1.lab: transcript is not UTF-8 text" in proc.stderr

    write_params(tmp_path, {**data, "on_error": "skip"})
    proc = run(tmp_path, "download")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "data/download_report.json").read_text())
    [skip] = report["skipped_utterances"]
    assert skip["utterance_id"] == "spk1_1"
    assert skip["file"] == str(tmp_path / "corpus/spk1/spk1_1.lab")
    assert "transcript is not UTF-8 text" in skip["reason"]


# --- 12: the features stage calls bad files "bad" unless it skips them -------------------------


def test_features_log_says_bad_under_fail_and_skipped_under_skip(tmp_path: Path):
    data = folder_corpus(tmp_path / "corpus")
    write_params(tmp_path, data)
    assert run(tmp_path, "download").returncode == 0
    (tmp_path / "data/raw/folder/audio/spk1/spk1_1.wav").write_bytes(b"RIFF" + bytes(40))

    write_params(tmp_path, data, features=FEATURES)
    proc = run(tmp_path, "features")
    assert proc.returncode == 1
    assert "bad spk1_1: " in proc.stderr and "unreadable audio" in proc.stderr
    assert "skipped spk1_1" not in proc.stderr

    write_params(tmp_path, data, features={**FEATURES, "on_error": "skip"})
    proc = run(tmp_path, "features")
    assert proc.returncode == 0, proc.stderr
    assert "skipped spk1_1: " in proc.stderr and "bad spk1_1" not in proc.stderr
