"""Shared by the benchmarks: the machine's description and docs/benchmarks.md sections."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from vqspeech.io import sections

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


def run_stage(stage: str, cwd: Path, *args: str) -> tuple[float, float]:
    """Run stages/<stage>.py in `cwd` in a fresh process: (wall seconds, peak RSS MiB).

    Peak RSS is the largest of the stage process and its workers (each measured alone).
    """
    script = REPO / "stages" / f"{stage}.py"
    code = (
        "import resource, runpy, sys; sys.argv = sys.argv[1:]\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "finally:\n"
        "    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "    print('PEAK_RSS_KIB', max(me, kids), file=sys.stderr)\n"
    )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, str(script), *args], cwd=cwd, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if proc.returncode not in (0, None) and "SystemExit: 0" not in proc.stderr:
        raise RuntimeError(f"{stage} failed:\n{proc.stderr[-3000:]}")
    peak = [line for line in proc.stderr.splitlines() if line.startswith("PEAK_RSS_KIB")]
    return wall, int(peak[-1].split()[1]) / 1024


def update_section(name: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section `name` of `doc` (docs/benchmarks.md)."""
    sections.update_section(doc, name, body, "# Benchmarks\n\nMeasured with `make bench`.\n")


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---:|" * len(header)]
    lines += ["| " + " | ".join(str(x) for x in row) + " |" for row in rows]
    return "\n".join(lines)


def stamp() -> str:
    return f"Machine: {machine()}; measured {time.strftime('%Y-%m-%d')}."


__all__ = ["REPO", "machine", "resource", "run_stage", "stamp", "table", "update_section"]
