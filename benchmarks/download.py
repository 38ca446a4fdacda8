"""Benchmark the download stage on the built-in corpus with the repository's params.

Runs `stages/download.py` in a scratch folder (nothing in data/ is touched), then records wall
time, audio produced, real-time factor and peak memory in docs/benchmarks.md (its own section).
Usage: python benchmarks/download.py [--utterances-per-speaker N] [--jobs N]
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer
import yaml

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = len(os.sched_getaffinity(0))
    return f"{cpu}, {cores} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def update_section(name: str, body: str) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\nMeasured with `make bench`.\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main(utterances_per_speaker: int | None = None, jobs: int = 0) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["corpus"] = "builtin"
    params["data"]["jobs"] = jobs
    if utterances_per_speaker:
        params["data"]["builtin"]["utterances_per_speaker"] = utterances_per_speaker
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        start = time.perf_counter()
        subprocess.run([sys.executable, str(REPO / "stages/download.py")], cwd=work, check=True)
        wall = time.perf_counter() - start
        stats = json.loads((work / "metrics/download.json").read_text())
        size = sum(p.stat().st_size for p in (work / "data/raw").rglob("*") if p.is_file())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB -> MiB
    flite = subprocess.run(["flite", "--version"], capture_output=True, text=True).stdout
    audio_s = stats["hours"] * 3600
    version = flite.strip().splitlines()[-1].strip() if flite.strip() else "flite"
    row = [
        stats["utterances"],
        stats["speakers"],
        f"{stats['hours']:.2f} h",
        f"{wall:.1f} s",
        f"{audio_s / wall:.0f}x",
        f"{peak:.0f} MiB",
        f"{size / 2**20:.0f} MiB",
    ]
    body = "\n".join(
        [
            "## download (built-in corpus)",
            "",
            "| utterances | speakers | audio | wall time | x real time | peak RSS | on disk |",
            "|---:|---:|---:|---:|---:|---:|---:|",
            "| " + " | ".join(str(x) for x in row) + " |",
            "",
            f"Machine: {machine()}; {version}; jobs={jobs or 'all cores'}; "
            f"measured {time.strftime('%Y-%m-%d')}.",
            "Target (issue 2): about 1 h of audio in under 3 minutes on 2 cores.",
        ]
    )
    update_section("download", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
