"""Benchmark the download stage on the built-in corpus with the repository's params.

Runs `stages/download.py` in a scratch folder (nothing in data/ is touched) and records wall time,
audio produced, real-time factor, peak memory and size on disk in docs/benchmarks.md.
Usage: python benchmarks/download.py [--utterances-per-speaker N] [--jobs N]
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import typer
import yaml
from benchlib import REPO, run_stage, stamp, table, update_section


def main(utterances_per_speaker: int | None = None, jobs: int = 0) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"]["corpus"] = "builtin"
    params["data"]["jobs"] = jobs
    if utterances_per_speaker:
        params["data"]["builtin"]["utterances_per_speaker"] = utterances_per_speaker
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "params.yaml").write_text(yaml.safe_dump(params))
        wall, peak = run_stage("download", work)
        stats = json.loads((work / "metrics/download.json").read_text())
        size = sum(p.stat().st_size for p in (work / "data/raw").rglob("*") if p.is_file())
    flite = subprocess.run(["flite", "--version"], capture_output=True, text=True).stdout
    version = flite.strip().splitlines()[-1].strip() if flite.strip() else "flite"
    row = [
        stats["utterances"],
        stats["speakers"],
        f"{stats['hours']:.2f} h",
        f"{wall:.1f} s",
        f"{stats['hours'] * 3600 / wall:.0f}x",
        f"{peak:.0f} MiB",
        f"{size / 2**20:.0f} MiB",
    ]
    header = ["utterances", "speakers", "audio", "wall", "x real time", "peak RSS", "on disk"]
    body = "\n".join(
        [
            "## download (built-in corpus)",
            "",
            table(header, [row]),
            "",
            f"{stamp()} {version}; jobs={jobs or 'all cores'}.",
            "Target: about 1 h of audio in under 3 minutes on 2 cores.",
        ]
    )
    update_section("download", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
