"""Benchmark the evaluate stage's per-utterance work on one synthetic utterance of growing length
(target: every metric linear in the utterance's length, so a 30-minute held-out utterance costs
seconds, not minutes).

Lengths: 1x, 10x and 60x a typical held-out utterance (150 latents of 20 ms, 3 s), and 600x
(90,000 latents, 30 min). Times, each the best of a few runs: `boundary_scores` on all frames
and on speech frames (`eval.boundary_tolerance`), `mean_run_length`, `scores` (every clustering
metric) and DPDP re-segmentation as the evaluate stage runs it per utterance
(`dpdp.squared_distances` against a codebook of `model.quantizer.codebook_size` codes of
`model.embedding_dim`, then `dpdp.segment` with `eval.dpdp.max_latents`, at the penalty
`dpdp.calibrate` finds for `eval.dpdp.mean_latents` on the 1x utterance). Beside them the
quadratic `boundary_scores` it replaced (every code boundary against every phone boundary),
up to 60x only (it would take minutes at 600x), checked equal to the new one. The ratio is
seconds per latent over that at 1x: 1 is linear, 10 at 10x would be quadratic.
Writes its section of docs/benchmarks.md (`--no-write`: print it only).
Usage: python benchmarks/long_utterance.py [--no-write]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import typer
from benchlib import REPO, stamp, table, update_section

from vqspeech.evaluate import dpdp
from vqspeech.evaluate.metrics import boundary_scores, mean_run_length, scores
from vqspeech.params import load_params

sys.path.insert(0, str(REPO))
# the quadratic definition it replaced, kept once: the exactness tests check against it
from tests.test_metrics import reference_boundary_scores as old_boundary_scores

TYPICAL = 150  # latents of a typical held-out utterance (3 s)
LENGTHS = (TYPICAL, 10 * TYPICAL, 60 * TYPICAL, 600 * TYPICAL)
OLD_UP_TO = 60 * TYPICAL
INVENTORY = np.array(["sil", "sp", "AA", "AE", "B", "D", "IY", "K", "N", "S", "T", "ZH"])


def utterance(
    latents: int, codebook: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Phones, codes and latent vectors of one synthetic utterance of `latents` 20 ms latents:
    phones in runs of 2-8 latents (a silence one time in ten); each phone's latents are the mean
    of three code vectors plus noise, and the codes the nearest code vectors: they change about
    every 1.5 latents and at nearly every phone boundary (boundary F1 about 0.5), much like the
    learned codes of metrics/eval.json (mean run 1.50, boundary F1 0.49)."""
    rng = np.random.default_rng(seed)
    runs = rng.integers(2, 9, latents)  # more runs than needed; cut below
    which = rng.integers(2, len(INVENTORY), latents)
    silence = rng.random(latents) < 0.1
    which[silence] = rng.integers(0, 2, int(silence.sum()))
    phone_idx = np.repeat(which, runs)[:latents]
    centres = codebook[rng.integers(0, len(codebook), (len(INVENTORY), 3))].mean(axis=1)
    vectors = centres[phone_idx] + 0.5 * rng.standard_normal((latents, codebook.shape[1]))
    codes = dpdp.squared_distances(vectors, codebook).argmin(axis=1)
    return INVENTORY[phone_idx], codes, vectors.astype(np.float32)


def seconds(fn: Callable[[], object], min_total: float = 0.2, repeats: int = 3) -> float:
    """Best of `repeats` timings of fn (each a loop of enough calls to last `min_total` s)."""
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    loops = max(1, int(min_total / max(once, 1e-9)))
    best = once
    for _ in range(repeats if once < 5 else 1):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best


def fmt(s: float) -> str:
    return f"{1e3 * s:.2f} ms" if s < 1 else f"{s:.2f} s"


NAMES = (
    "boundary_scores (all frames)",
    "boundary_scores (speech only)",
    "old boundary_scores (all frames)",
    "old boundary_scores (speech only)",
    "mean_run_length",
    "scores",
    "DPDP (squared_distances + segment)",
)


def measure(
    n: int, codebook: np.ndarray, tolerance: int, penalty: float, max_len: int
) -> tuple[dict[str, float], tuple[int, int, float, float]]:
    """Seconds per call of every function of NAMES on one utterance of `n` latents (the old
    boundary_scores up to OLD_UP_TO only), and its (phone boundaries, code boundaries, mean run
    of the codes, mean run of the DPDP codes)."""
    phones, codes, vectors = utterance(n, codebook, seed=1)
    ps, cs = [phones], [codes]

    def resegment() -> np.ndarray:  # as evaluator.evaluate does per utterance
        return dpdp.segment(dpdp.squared_distances(vectors, codebook), penalty, max_len)

    out = {}
    for speech_only, side in ((False, "all frames"), (True, "speech only")):
        new = boundary_scores(ps, cs, tolerance, speech_only)
        out[f"boundary_scores ({side})"] = seconds(
            lambda so=speech_only: boundary_scores(ps, cs, tolerance, so)
        )
        if n <= OLD_UP_TO:
            old = old_boundary_scores(ps, cs, tolerance, speech_only)
            if old != new:
                raise AssertionError(f"{n} latents, speech_only={speech_only}: {old} != {new}")
            out[f"old boundary_scores ({side})"] = seconds(
                lambda so=speech_only: old_boundary_scores(ps, cs, tolerance, so), repeats=1
            )
    out["mean_run_length"] = seconds(lambda: mean_run_length(cs))
    out["scores"] = seconds(lambda: scores(phones, codes))
    out["DPDP (squared_distances + segment)"] = seconds(resegment, repeats=1)
    counts = (
        len(np.flatnonzero(phones[1:] != phones[:-1])),
        len(np.flatnonzero(codes[1:] != codes[:-1])),
        mean_run_length(cs),
        mean_run_length([resegment()]),
    )
    return out, counts


def main(write: bool = True) -> None:
    params = load_params(REPO / "params.yaml")
    tolerance, max_len = params.eval.boundary_tolerance, params.eval.dpdp.max_latents
    k, dim = params.model.quantizer.codebook_size, params.model.embedding_dim
    codebook = np.random.default_rng(0).standard_normal((k, dim)).astype(np.float32)
    _, _, base_vectors = utterance(TYPICAL, codebook, seed=1)
    penalty = dpdp.calibrate([dpdp.squared_distances(base_vectors, codebook)], params.eval.dpdp)
    times: dict[str, dict[int, float]] = {name: {} for name in NAMES}
    info = {}
    for n in LENGTHS:
        got, info[n] = measure(n, codebook, tolerance, penalty, max_len)
        for name, s in got.items():
            times[name][n] = s
        print(n, {name: fmt(s) for name, s in got.items()}, flush=True)
    rows = []
    for name in NAMES:
        row: list[object] = [name]
        for n in LENGTHS:
            if n not in times[name]:
                row.append("not run")
                continue
            ratio = (times[name][n] / n) / (times[name][TYPICAL] / TYPICAL)
            row.append(f"{fmt(times[name][n])} ({ratio:.2f})")
        last, before = LENGTHS[-1], LENGTHS[-2]
        grew = times[name][last] / times[name][before] if last in times[name] else None
        row.append("" if grew is None else f"{grew:.1f}")
        rows.append(row)
    header = [
        "per utterance",
        *(f"{n:,} latents ({n // TYPICAL}x)" for n in LENGTHS),
        f"time at {LENGTHS[-1]:,} / at {LENGTHS[-2]:,}",
    ]
    boundaries = ", ".join(f"{n:,}: {p:,} / {c:,}" for n, (p, c, _, _) in info.items())
    runs = info[TYPICAL]
    body = "\n".join(
        [
            "## one long utterance: per-utterance metrics at 1x, 10x, 60x and 600x its length",
            "",
            f"{stamp()} One synthetic utterance of 150 latents (3 s, a typical held-out one), "
            "1,500, 9,000 and 90,000 (30 min). Each cell: seconds per call (best of a few), and in "
            "brackets "
            "seconds per latent over that at 150 latents (1: linear; 10x the length at 10 would be "
            "quadratic; below 1, fixed costs spread); the last column: how much the time grew from "
            "9,000 to 90,000 latents (10: linear, 100: quadratic). `old boundary_scores` is the "
            "quadratic one it replaced (checked equal), not run at 90,000. "
            f"eval.boundary_tolerance = {tolerance}; DPDP: K = {k}, {dim}-dim vectors, "
            f"max_latents = {max_len}, penalty calibrated on the 150-latent utterance to "
            f"{params.eval.dpdp.mean_latents:g} latents a segment ({runs[3]:.1f} there; "
            f"raw codes {runs[2]:.2f}). "
            f"Phone / code boundaries: {boundaries}.",
            "",
            table(header, rows),
        ]
    )
    if write:
        update_section("long_utterance", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
