"""Benchmark training throughput: default and reference model sizes, with and without the data path.

Each configuration runs in a fresh process (so peak memory is its own): it indexes and reads the
train split as the train stage streams it (`train.buffer_mb` 64: the default split is one window,
read once), then times the training loop's own step (`loop.Stepper`, fused Adam)
- with the data path: the stream's batches of crops, turned into tensors;
- without it: the same pre-made batch every step;
and the data path alone over a whole epoch: from the one window in memory ('data path'), and
with the split read in 8 windows every epoch ('windowed'), the shards' reads and normalization
included: what a corpus 8x larger than `train.buffer_mb` costs per batch.
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
from collections.abc import Iterator
from pathlib import Path

import torch
import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vqspeech.features.stats import Normalizer  # noqa: E402
from vqspeech.model.build import build  # noqa: E402
from vqspeech.params import changed, load_params  # noqa: E402
from vqspeech.train.loop import Dist, Stepper, _tensors, adam  # noqa: E402
from vqspeech.train.stream import CropBatch, Plan, Source, Streamed  # noqa: E402

BUFFER_MB = 64  # train.buffer_mb's default: the default split fits one window
WINDOWS = 8  # the windowed data path: the split read in 8 windows, as a corpus 8x larger is
CROP = 48

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
    source = Streamed(REPO / "data/features", "train", norm, BUFFER_MB * 2**20, audio=wavenet)
    plan = Plan(CROP, batch_size, 0)
    source.load(source.windows(0, 0)[0])  # the split fits one window: read once, kept
    load_s = time.perf_counter() - t0
    cfg = changed(load_params(REPO / "params.yaml").model, **SIZES[size])
    torch.manual_seed(0)
    model = build(cfg, input_dim=source.input_dim, n_speakers=source.n_speakers).to(dev).train()
    stepper = Stepper(model, model, adam(model, 2e-4), Dist(device=dev))

    def forever(src: Source) -> Iterator[CropBatch]:
        epoch = 0
        while True:
            yield from plan.batches(src, epoch)
            epoch += 1

    stream = forever(source)
    fixed = next(stream)

    def timed(with_data: bool) -> float:
        for _ in range(3):  # warm-up
            stepper(fixed)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            stepper(next(stream) if with_data else fixed)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    def epoch_of_data(src: Source) -> float:
        """Seconds per batch of reading one whole epoch's batches and making tensors of them
        (the shards' reads of a windowed epoch included)."""
        start, n = time.perf_counter(), 0
        for c in plan.batches(src, 1):
            _tensors(c, Dist(device=dev))
            n += 1
        return (time.perf_counter() - start) / n

    with_data, without = timed(True), timed(False)
    data_s = epoch_of_data(source)
    split_bytes = source.frames * (4 * source.input_dim + (320 if wavenet else 0))
    windowed = Streamed(REPO / "data/features", "train", norm, split_bytes / WINDOWS, audio=wavenet)
    n_windows = len(windowed.windows(0, 1))
    windowed_s = epoch_of_data(windowed)
    frames = batch_size * CROP
    result = {
        "size": size,
        "device": str(dev),
        "params": sum(p.numel() for p in model.parameters()),
        "load_s": load_s,
        "step_s": with_data,
        "step_s_no_data": without,
        "data_s": data_s,
        "data_share": data_s / without,
        "windowed_s": windowed_s,
        "windows": n_windows,
        "windowed_share": windowed_s / without,
        "frames_per_s": frames / with_data,
        "audio_x": frames * 0.01 / with_data,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if dev.type == "cuda":
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as counter:
            stepper(fixed)
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
    audio: bool = True,
) -> None:
    """`--no-audio`: leave out the sizes that train on audio (the WaveNet decoder), for feature
    shards without it (benchmarks/gpu_pack.py)."""
    if one_size:
        print("RESULT " + json.dumps(one(one_size, steps, device, batch_size, peak_tflops)))
        return
    results = []
    for size in SIZES:
        if not audio and SIZES[size].get("decoder") == "wavenet":
            continue
        cmd = [
            sys.executable,
            __file__,
            "--one-size",
            size,
            "--steps",
            str(steps),
            "--device",
            device,
            "--batch-size",
            str(batch_size),
            "--peak-tflops",
            str(peak_tflops),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.split("RESULT ", 1)[1]))
        print(results[-1], flush=True)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from benchlib import stamp, table, update_section

    header = [
        "model",
        "device",
        "params",
        "step",
        "step w/o data",
        "data path",
        "share",
        "windowed data path",
        "share",
        "frames/s",
        "x real time",
        "peak RSS",
    ]
    rows = [
        [
            r["size"],
            r["device"],
            f"{r['params'] / 1e6:.2f} M",
            f"{r['step_s'] * 1000:.0f} ms",
            f"{r['step_s_no_data'] * 1000:.0f} ms",
            f"{r['data_s'] * 1000:.2f} ms",
            f"{100 * r['data_share']:.1f} %",
            f"{r['windowed_s'] * 1000:.2f} ms",
            f"{100 * r['windowed_share']:.1f} %",
            f"{r['frames_per_s']:.0f}",
            f"{r['audio_x']:.0f}x",
            f"{r['peak_rss_mib']:.0f} MiB",
        ]
        for r in results
    ]
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
            "crops and make tensors, timed alone over a whole epoch; 'windowed' the same with the "
            f"split read in {results[0]['windows']} windows of at most 1/{WINDOWS} of it every "
            "epoch (Parquet read + normalization of every frame once per epoch, as for any corpus "
            "larger than `train.buffer_mb`; in training the next window is read in a thread "
            "while the current one trains); 'share' is that over the step time without it "
            "(target: under 10 %). At GPU step rates: one reader sustains "
            f"{1 / results[0]['windowed_s']:.0f} windowed batches/s of the default model "
            f"({1 / results[0]['data_s']:.0f}/s from one window in memory), so a step faster "
            f"than {results[0]['windowed_s'] * 1000 / 0.1:.0f} ms would see a data share over "
            "10 % with `train.workers` = 0; each data-loader worker adds a reader.",
        ]
    )
    if write:
        update_section(f"train-{device}", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
