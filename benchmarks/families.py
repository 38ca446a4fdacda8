"""Benchmark the training step of each model family against the VQ-VAE's, at the default params.

One process builds every family (`model.family` vqvae, vqcpc, cpc, hubert; the rest of params.yaml
as it is) and times the training loop's own step (`loop.Stepper`: forward, losses, backward, fused
Adam) on the same pre-made batch of `train.batch_size` crops of `train.crop_frames` frames, the
contrastive families' batch grouped into `model.cpc.speakers_per_batch` speakers as the loop groups
it. The families are timed in interleaved rounds, so that a noisy machine slows them alike; each
family's ratio to the VQ-VAE is taken within a round, then the median over rounds.
The last column is the default epoch count's steps on the default corpus (`--steps-per-run`) at
the median step time: the training time without the data path and validation.
Writes its section of docs/benchmarks.md unless --no-write.
Usage: python benchmarks/families.py [--rounds N] [--device cpu|cuda]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

from vqspeech.model.build import build  # noqa: E402
from vqspeech.params import changed, load_params  # noqa: E402
from vqspeech.train.loop import Dist, Stepper, adam  # noqa: E402
from vqspeech.train.stream import CropBatch  # noqa: E402

FAMILIES = ("vqvae", "vqcpc", "cpc", "hubert")
DIM, SPEAKERS = 39, 48


def stepper(family: str, dev: torch.device) -> tuple[Stepper, CropBatch]:
    params = load_params(REPO / "params.yaml")
    cfg, t = changed(params.model, family=family), params.train
    torch.manual_seed(0)
    model = build(cfg, input_dim=DIM, n_speakers=SPEAKERS).to(dev).train()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((t.batch_size, t.crop_frames, DIM)).astype(np.float32)
    groups = cfg.cpc.speakers_per_batch if family != "vqvae" else t.batch_size
    speakers = np.repeat(np.arange(groups), t.batch_size // groups)
    return Stepper(model, model, adam(model, t.lr), Dist(device=dev)), CropBatch(x, speakers)


def timed(step: Stepper, batch: CropBatch, n: int, dev: torch.device) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        step(batch)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / n


def main(
    device: str = "cpu", rounds: int = 7, write: bool = True, steps_per_run: int = 6960
) -> None:
    from benchlib import stamp, table, update_section

    dev = torch.device(device)
    steps = {f: stepper(f, dev) for f in FAMILIES}
    for s, b in steps.values():  # warm-up
        timed(s, b, 3, dev)
    n = max(2, int(0.5 / timed(*steps["vqvae"], 1, dev)))  # about 0.5 s per timing
    times: dict[str, list[float]] = {f: [] for f in FAMILIES}
    ratios: dict[str, list[float]] = {f: [] for f in FAMILIES}
    for _ in range(rounds):
        this = {f: timed(s, b, n, dev) for f, (s, b) in steps.items()}
        for f in FAMILIES:
            times[f].append(this[f])
            ratios[f].append(this[f] / this["vqvae"])
    rows = []
    for f in FAMILIES:
        median = statistics.median(times[f])
        rows.append(
            [
                f,
                f"{median * 1e3:.1f} ms",
                f"{statistics.median(ratios[f]):.2f}",
                f"{median * steps_per_run / 60:.1f} min",
            ]
        )
        print(f, rows[-1], flush=True)
    header = ["family", "step", "vs the VQ-VAE's", f"{steps_per_run} steps"]
    body = (
        f"{stamp()} `python benchmarks/families.py --device {device}`: the training step of each "
        f"model family at the default params (batch of {steps['vqvae'][1].x.shape[0]} crops of "
        f"{steps['vqvae'][1].x.shape[1]} frames), interleaved "
        f"rounds ({rounds}), the ratio taken within each round.\n\n" + table(header, rows)
    )
    if write:
        update_section("families", body)


if __name__ == "__main__":
    typer.run(main)
