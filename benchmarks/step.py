"""Benchmark the training step against the reference implementation and the machine's matmul rate.

For each model size (this project's default, and the reference's: 768 channels, K = 44, its k=3
decoder and 12 % jitter) and batch (2, the reference's default; 8; 32, the project's), one
process times, in interleaved rounds so that a noisy machine slows all three alike:
- this project's training step: the training loop's own `loop.Stepper` (forward, losses,
  backward, Adam; bf16 autocast on CUDA), on a batch of crops already made;
- the reference implementation's step (benchmarks/reference.py: its model, loss and optimizer at
  the same size, 100 speakers);
- a 2048 x 2048 fp32 matmul (`torch.mm`), the machine's dense matmul rate at the same moment.
The FLOPs of one step of this project's model are counted by torch's FlopCounterMode (convolutions
and matmuls, forward and backward), so 'share of matmul rate' is the step's achieved FLOP/s over
the matmul's. Speeds are medians over rounds; ratios are taken within a round.
Usage: python benchmarks/step.py [--device cpu|cuda] [--rounds N] [--no-write]
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

from reference import reference_model, reference_optimizer, reference_step  # noqa: E402

from vqspeech.model.build import build  # noqa: E402
from vqspeech.params import changed, load_params  # noqa: E402
from vqspeech.train.loop import Dist, Stepper, adam  # noqa: E402
from vqspeech.train.stream import CropBatch  # noqa: E402

SIZES = {
    "default (128 ch, K=64)": ({}, 128, 64),
    "reference (768 ch, K=44)": (
        {"channels": 768, "quantizer": {"codebook_size": 44}, "decoder_kernel": 3, "jitter": 0.12},
        768,
        44,
    ),
}
BATCHES = (2, 8, 32)
CROP, DIM, SPEAKERS = 48, 39, 100


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, n: int, dev: torch.device) -> float:
    sync(dev)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    sync(dev)
    return (time.perf_counter() - start) / n


def matmul_rate(dev: torch.device, n: int = 2048) -> float:
    """FLOP/s of one n x n fp32 matmul, the best of three."""
    a, b = torch.randn(n, n, device=dev), torch.randn(n, n, device=dev)
    torch.mm(a, b)
    return 2 * n**3 / min(timed(lambda: torch.mm(a, b), 3, dev) for _ in range(3))


def one(size: str, batch: int, dev: torch.device, rounds: int) -> dict:
    overrides, channels, k = SIZES[size]
    torch.manual_seed(0)
    cfg = changed(load_params(REPO / "params.yaml").model, **overrides)
    model = build(cfg, input_dim=DIM, n_speakers=SPEAKERS).to(dev).train()
    optimizer = adam(model, 2e-4)
    d = Dist(device=dev)
    stepper = Stepper(model, model, optimizer, d)
    rng = np.random.default_rng(0)
    crops = CropBatch(
        rng.standard_normal((batch, CROP, DIM)).astype(np.float32), rng.integers(0, SPEAKERS, batch)
    )
    ref = reference_model(channels, k, DIM, SPEAKERS).to(dev)
    ref_opt = reference_optimizer(ref)
    x, spk = torch.from_numpy(crops.x).to(dev), torch.from_numpy(crops.speakers).to(dev)
    ours_step = lambda: stepper(crops)  # noqa: E731
    ref_step = lambda: reference_step(ref, ref_opt, x, spk)  # noqa: E731
    for _ in range(3):  # warm-up
        ours_step(), ref_step()
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        ours_step()
    flops = counter.get_total_flops()
    n = max(2, int(0.5 / max(1e-4, timed(ours_step, 1, dev))))  # about 0.5 s per timing
    ours, theirs, rates, speedups, shares = [], [], [], [], []
    for _ in range(rounds):
        rate = matmul_rate(dev)
        a, b = timed(ours_step, n, dev), timed(ref_step, n, dev)
        ours.append(a), theirs.append(b), rates.append(rate)
        speedups.append(b / a)
        shares.append(flops / a / rate)
    return {
        "size": size,
        "batch": batch,
        "params": sum(p.numel() for p in model.parameters()),
        "ref_params": sum(p.numel() for p in ref.parameters()),
        "ours_s": statistics.median(ours),
        "ref_s": statistics.median(theirs),
        "speedup": statistics.median(speedups),
        "gflops": flops / statistics.median(ours) / 1e9,
        "matmul_gflops": statistics.median(rates) / 1e9,
        "share": statistics.median(shares),
        "flops": flops,
    }


def main(device: str = "cpu", rounds: int = 5, write: bool = True, only: str = "") -> None:
    """`--only reference`: the sizes whose name starts with it (no section written)."""
    dev = torch.device(device)
    from benchlib import stamp, table, update_section

    results = []
    write = write and not only
    for size in (s for s in SIZES if s.startswith(only)):
        for batch in BATCHES:
            results.append(one(size, batch, dev, rounds))
            print(results[-1], flush=True)
    header = [
        "model",
        "batch",
        "params (reference's)",
        "step",
        "reference step",
        "speed vs reference",
        "GFLOP/s",
        "matmul GFLOP/s",
        "share of matmul rate",
    ]
    rows = [
        [
            r["size"],
            r["batch"],
            f"{r['params'] / 1e6:.2f} M ({r['ref_params'] / 1e6:.2f} M)",
            f"{r['ours_s'] * 1000:.1f} ms",
            f"{r['ref_s'] * 1000:.1f} ms",
            f"{r['speedup']:.2f}x",
            f"{r['gflops']:.0f}",
            f"{r['matmul_gflops']:.0f}",
            f"{100 * r['share']:.0f} %",
        ]
        for r in results
    ]
    gpu = f" on {torch.cuda.get_device_name()}" if dev.type == "cuda" else ""
    body = "\n".join(
        [
            f"## training step vs the reference implementation ({device}{gpu})",
            "",
            table(header, rows),
            "",
            f"{stamp()} fp32{' (bf16 autocast)' if dev.type == 'cuda' else ''}, crops of {CROP} "
            f"frames, torch threads: {torch.get_num_threads()}; medians of {rounds} interleaved "
            "rounds (this project's step, the reference's, a 2048² matmul). 'speed vs reference' "
            "is "
            "the reference's step time over this project's (above 1: faster); 'share of matmul "
            "rate' "
            "is this project's FLOPs per step (FlopCounterMode) per second over the matmul's "
            "FLOP/s "
            "in the same round. The reference's own model at 768 channels has fewer parameters "
            "(its "
            "two residual layers share one block's weights) but the same convolutions per step.",
        ]
    )
    if write:
        update_section(f"step-{device}", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
