"""Benchmark training throughput: default and reference model sizes, with and without the data path.

Each configuration runs in a fresh process (so peak memory is its own): it loads the train split
(Parquet read + normalization, timed once), then times optimizer steps
- with the data path: random crops gathered from the in-memory split and turned into tensors;
- without it: the same pre-made batch every step.
On CUDA (bf16 autocast) it also counts FLOPs per step with torch's FlopCounterMode and reports the
achieved fraction of the GPU's peak dense bf16 FLOP/s (--peak-tflops; 989 for H100/H200 SXM).
Writes its section of docs/benchmarks.md unless --no-write. Needs data/features and data/stats.json
(`dvc repro stats`). Usage: python benchmarks/train.py [--steps N] [--device cpu|cuda]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vqspeech.features.stats import Normalizer  # noqa: E402
from vqspeech.model.vqvae import VQVAE, decoder_loss  # noqa: E402
from vqspeech.params import ModelParams  # noqa: E402
from vqspeech.train.crops import batch, batch_audio, epoch_batches, load_split  # noqa: E402

SIZES = {
    "default (128 ch, K=64)": {"channels": 128, "quantizer": {"codebook_size": 64}},
    "reference (768 ch, K=44)": {
        "channels": 768,
        "quantizer": {"codebook_size": 44},
        "decoder_kernel": 3,
    },  # the reference's decoder
    "default + WaveNet decoder (32 ch, 8 layers, 320 samples/crop)": {"decoder": "wavenet"},
}


def one(size: str, steps: int, device: str, batch_size: int, peak_tflops: float) -> dict:
    dev = torch.device(device)
    t0 = time.perf_counter()
    norm = Normalizer.load(REPO / "data/stats.json")
    wavenet = SIZES[size].get("decoder") == "wavenet"
    train, speakers = load_split(REPO / "data/features", "train", norm, audio=wavenet)
    load_s = time.perf_counter() - t0
    cfg = ModelParams.model_validate(SIZES[size])
    torch.manual_seed(0)
    model = VQVAE(cfg, input_dim=train.features.shape[1], n_speakers=len(speakers))
    model = model.to(dev).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-4, amsgrad=True)
    batches = epoch_batches(train, 48, batch_size, 0, 0)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda")

    def gather(i: int) -> list[np.ndarray]:
        utt, start = batches[i % len(batches)]
        arrays = list(batch(train, utt, start, 48))
        return arrays + ([batch_audio(train, utt, start, 48)] if wavenet else [])

    def step(x: torch.Tensor, s: torch.Tensor, a: torch.Tensor | None = None) -> None:
        with autocast:
            out = model(x, s, a)
            loss = decoder_loss(x, out) + out.vq.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def to_dev(a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(a)
        return t.pin_memory().to(dev, non_blocking=True) if dev.type == "cuda" else t

    def timed(with_data: bool) -> float:
        fixed = [to_dev(a) for a in gather(0)]
        for _ in range(3):  # warm-up
            step(*fixed)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(steps):
            if with_data:
                step(*(to_dev(a) for a in gather(i)))
            else:
                step(*fixed)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    def data_only(n: int = 200) -> float:
        start = time.perf_counter()
        for i in range(n):
            [to_dev(a) for a in gather(i)]
        return (time.perf_counter() - start) / n

    with_data, without, data_s = timed(True), timed(False), data_only()
    frames = batch_size * 48
    result = {
        "size": size, "device": str(dev), "params": sum(p.numel() for p in model.parameters()),
        "load_s": load_s, "step_s": with_data, "step_s_no_data": without, "data_s": data_s,
        "data_share": data_s / without,
        "frames_per_s": frames / with_data, "audio_x": frames * 0.01 / with_data,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip
    if dev.type == "cuda":
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            step(*(to_dev(a) for a in gather(0)))
        flops = counter.get_total_flops()
        result["tflops"] = flops / with_data / 1e12
        result["peak_fraction"] = result["tflops"] / peak_tflops
        result["gpu"] = torch.cuda.get_device_name()
        result["peak_gpu_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main(
    steps: int = 40,
    device: str = "cpu",
    batch_size: int = 32,
    peak_tflops: float = 989.0,
    one_size: str = "",
    write: bool = True,
) -> None:
    if one_size:
        print("RESULT " + json.dumps(one(one_size, steps, device, batch_size, peak_tflops)))
        return
    results = []
    for size in SIZES:
        cmd = [
            sys.executable, __file__, "--one-size", size, "--steps", str(steps), "--device",
            device, "--batch-size", str(batch_size), "--peak-tflops", str(peak_tflops),
        ]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.split("RESULT ", 1)[1]))
        print(results[-1], flush=True)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from benchlib import stamp, table, update_section

    header = ["model", "device", "params", "step", "step w/o data", "data path", "share",
              "frames/s", "x real time", "peak RSS"]  # fmt: skip
    rows = [
        [r["size"], r["device"], f"{r['params'] / 1e6:.2f} M", f"{r['step_s'] * 1000:.0f} ms",
         f"{r['step_s_no_data'] * 1000:.0f} ms", f"{r['data_s'] * 1000:.2f} ms",
         f"{100 * r['data_share']:.1f} %",
         f"{r['frames_per_s']:.0f}", f"{r['audio_x']:.0f}x", f"{r['peak_rss_mib']:.0f} MiB"]
        for r in results
    ]  # fmt: skip
    gpu = [r for r in results if "tflops" in r]
    extra = [
        f"{r['gpu']}: {r['size']} {r['tflops']:.1f} TFLOP/s = {100 * r['peak_fraction']:.2f} % of "
        f"{peak_tflops:.0f} peak bf16; peak GPU memory {r['peak_gpu_mem_mib']:.0f} MiB"
        for r in gpu
    ]
    body = "\n".join(
        [
            f"## train ({device})",
            "",
            table(header, rows),
            "",
            *extra,
            f"{stamp()} batch {batch_size} x 48 frames, {steps} timed steps after 3 warm-up "
            f"steps; loading the train split (Parquet + normalization) took "
            f"{results[0]['load_s']:.1f} s once. 'data path' is the time to gather one batch of "
            "crops and make tensors, timed alone over 200 batches; 'share' is that over the step "
            "time without it (target: under 10 %).",
        ]
    )
    if write:
        update_section(f"train-{device}", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
