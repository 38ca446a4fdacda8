"""Benchmark the stages' compute on a shared machine: quiet, and beside competing loads.

Three workloads, each timed in a fresh process for a few seconds (median time per unit):
- train: the default training step (`loop.Stepper`, batch 32, the default model; torch, OpenMP);
- evaluate: scikit-learn k-means of 50,000 x 39 frames into 64 clusters, 10 iterations (the
  evaluate stage's baselines; scikit-learn's own OpenMP runtime);
- features: MFCC39 of 2 s of audio (librosa, numba, numpy) in one process with BLAS pinned to
  one thread, as each features worker runs (its own threads collapse beside a load: 1 -> 8-16 ms
  when left at OpenBLAS's two, measured 2026-12-07 AMD EPYC, which is why the workers pin it).
Each runs quiet, beside another experiment's evaluate (the real `stages/evaluate.py` in a loop on
this checkout's data/codes when a `dvc repro` made them, else the k-means loop; `dvc queue start
-j 2`), beside two busy single-threaded processes, and beside both. Policies, the loads under the
same one: 'libgomp default' (300,000 spins before a thread sleeps, what torch does unless told),
'project' (the process imports vqspeech.cli first, as every stage does: it waits passively when
other work keeps the cores busy at its start, else spins), OMP_WAIT_POLICY=PASSIVE, and one
thread (libgomp default). Fair share: with every runnable thread served alike (Linux CFS), a
2-thread workload beside one other 2-thread process or beside two single-threaded ones holds 2 of
4 threads (half the machine: fair time = 2 x the quiet time), beside all three 2 of 6 (3 x).
Rounds interleave the policies, so a noisy machine slows them alike; medians over rounds.
Usage: python benchmarks/shared.py [--rounds N] [--seconds S] [--workloads train,...] [--no-write]
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

WORKLOADS = {
    "train": """
import torch, numpy as np
from vqspeech.model.build import build
from vqspeech.params import load_params
from vqspeech.train.loop import Dist, Stepper, adam
from vqspeech.train.stream import CropBatch
torch.manual_seed(0)
model = build(load_params("params.yaml").model, input_dim=39, n_speakers=100).train()
step = Stepper(model, model, adam(model, 2e-4), Dist(device=torch.device("cpu")))
rng = np.random.default_rng(0)
crops = CropBatch(rng.standard_normal((32, 48, 39)).astype(np.float32), rng.integers(0, 100, 32))
unit = lambda: step(crops)
""",
    "evaluate": """
import numpy as np
from sklearn.cluster import KMeans
x = np.random.default_rng(0).standard_normal((50000, 39)).astype(np.float32)
unit = lambda: KMeans(64, n_init=1, max_iter=10, tol=0, random_state=0).fit(x)
""",
    "features": """
import numpy as np, threadpoolctl
from vqspeech.features.acoustic import FeatureConfig, extract
threadpoolctl.threadpool_limits(1)  # as every features worker does (extract._init_worker)
cfg = FeatureConfig(kind="mfcc39", n_mels=26, preemphasis=0.97, normalize="none")
y = 0.1 * np.random.default_rng(0).standard_normal(32000).astype(np.float32)
unit = lambda: extract(y, cfg)
""",
}
TIMER = """
import statistics, sys, time
{preamble}
{setup}
for _ in range(3):
    unit()
times, end = [], time.perf_counter() + {seconds}
while time.perf_counter() < end or len(times) < 3:
    t = time.perf_counter(); unit(); times.append(time.perf_counter() - t)
print(statistics.median(times))
"""
PROJECT = "import vqspeech.cli"  # what every stage script does first
ONE_THREAD = (
    "import threadpoolctl, torch; threadpoolctl.threadpool_limits(1); torch.set_num_threads(1)"
)
KMEANS_LOOP = WORKLOADS["evaluate"] + "\nwhile True:\n    unit()\n"
STAGE_LOOP = """
import subprocess, sys, tempfile
out = tempfile.mkdtemp()
while True:
    subprocess.run([sys.executable, "stages/evaluate.py", "--metrics", out + "/m.json",
                    "--report", out + "/r.json"], cwd={repo!r}, capture_output=True)
"""
BUSY = "while True: pass"
FAIR = {"quiet": 1, "beside evaluate": 2, "beside 2 busy": 2, "beside evaluate + 2 busy": 3}
OMP_VARS = (
    "OMP_WAIT_POLICY",
    "GOMP_SPINCOUNT",
    "KMP_BLOCKTIME",
    "OMP_NUM_THREADS",
    "VQSPEECH_OPENMP_CHOSEN",
)
LIBGOMP_DEFAULT = {"GOMP_SPINCOUNT": "300000"}  # set, so that vqspeech.cli leaves it alone


def loads() -> dict[str, list[str]]:
    real = (REPO / "data/codes/codes.parquet").is_file()
    evaluate = STAGE_LOOP.format(repo=str(REPO)) if real else PROJECT + "\n" + KMEANS_LOOP
    return {
        "quiet": [],
        "beside evaluate": [evaluate],
        "beside 2 busy": [BUSY, BUSY],
        "beside evaluate + 2 busy": [evaluate, BUSY, BUSY],
    }


def policies() -> dict[str, tuple[dict[str, str], str]]:
    """name -> (environment settings, code run before the workload)."""
    return {
        "libgomp default": (LIBGOMP_DEFAULT, ""),
        "project": ({}, PROJECT),
        "OMP_WAIT_POLICY=PASSIVE": ({"OMP_WAIT_POLICY": "PASSIVE"}, ""),
        "1 thread": (LIBGOMP_DEFAULT, ONE_THREAD),
    }


def environment(settings: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    env["PYTHONPATH"] = str(REPO / "src")
    return {**env, **settings}


def timed(
    workload: str, settings: dict[str, str], preamble: str, load: list[str], seconds: float
) -> float:
    env = environment(settings)
    others = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for code in load
    ]
    try:
        time.sleep(5.0 if load else 0.0)  # the loads past their imports
        code = TIMER.format(preamble=preamble, setup=WORKLOADS[workload], seconds=seconds)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        for p in others:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def main(
    rounds: int = 3,
    seconds: float = 5.0,
    write: bool = True,
    workloads: str = "train,evaluate,features",
) -> None:
    """`--workloads train`: only those (no section written)."""
    from benchlib import stamp, table, update_section

    chosen, competing = policies(), loads()
    names = [w for w in workloads.split(",") if w]
    write = write and names == list(WORKLOADS)
    results: dict[tuple[str, str, str], list[float]] = {}
    for r in range(rounds):
        for workload in names:
            for load_name, load in competing.items():
                for policy, (settings, preamble) in chosen.items():
                    s = timed(workload, settings, preamble, load, seconds)
                    results.setdefault((workload, load_name, policy), []).append(s)
                    print(
                        f"round {r}: {workload} {load_name} {policy}: {s * 1000:.0f} ms", flush=True
                    )
    med = {k: statistics.median(v) for k, v in results.items()}
    parts = ["## shared machine: each stage's compute beside competing loads", ""]
    for workload in names:
        base = med[(workload, "quiet", "libgomp default")]
        rows = []
        for load_name in competing:
            row: list[object] = [load_name]
            for policy in chosen:
                t = med[(workload, load_name, policy)]
                cell = f"{t * 1000:.0f} ms"
                if load_name == "quiet":
                    cell += f" ({t / base:.2f}x)"
                else:
                    cell += f" ({t / (base * FAIR[load_name]):.2f}x fair)"
                row.append(cell)
            rows.append(row)
        parts += [f"**{workload}**", "", table(["load", *chosen], rows), ""]
    real = "the real evaluate stage in a loop" if (REPO / "data/codes").is_dir() else "k-means"
    parts.append(
        f"{stamp()} Medians of {rounds} interleaved rounds of {seconds:.0f} s per cell. Quiet "
        "cells: the time and, in brackets, over libgomp default's quiet time. Loaded cells: "
        "the time and, in brackets, over the fair-share time: libgomp default's quiet time x 2 "
        "beside one other 2-thread process or two single-threaded ones, x 3 beside all three. "
        f"'beside evaluate': {real}, under the same policy. Written by benchmarks/shared.py."
    )
    body = "\n".join(parts)
    if write:
        update_section("shared", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
