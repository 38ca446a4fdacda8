"""Benchmark WaveNet generation speed on CPU (and GPU when present): samples per second of the
cached (ring buffer per layer) generation, for one sequence and for the synthesize stage's batch
of 12 (3 reconstructions + 9 conversions), against re-running the whole prefix.

Usage: python benchmarks/wavenet.py [--seconds 0.2]
"""

from __future__ import annotations

import time

import torch
import typer
from benchlib import REPO, stamp, table, update_section

from vqspeech.model.wavenet import WaveNet
from vqspeech.params import changed, load_params

COND, SPEAKER = 64, 64  # model.embedding_dim, model.speaker_dim
DEFAULT = load_params(REPO / "params.yaml").model.wavenet
CONFIGS = {
    "default (32 ch, 1 x 8 layers)": DEFAULT,
    "paper-scale (256 ch, 2 x 10 layers)": changed(
        DEFAULT, residual_channels=256, skip_channels=256, layers_per_stack=10, stacks=2
    ),
}


def rate(net: WaveNet, latents: int, cached: bool, device: torch.device, batch: int = 1) -> float:
    """Samples of one sequence per second (a batch generates `batch` of them at once)."""
    z = torch.randn(batch, latents, COND, device=device)
    spk = torch.randn(batch, SPEAKER, device=device)
    start = time.perf_counter()
    out = net.generate(z, spk, torch.Generator().manual_seed(0), cached=cached)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out.shape[1] / (time.perf_counter() - start)


def main(seconds: float = 0.2) -> None:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for name, cfg in CONFIGS.items():
        for device in devices:
            net = WaveNet(cfg, cond_dim=COND, speaker_dim=SPEAKER).to(device).eval()
            latents = max(1, round(seconds / 0.02))
            fast = rate(net, latents, True, device)
            batched = rate(net, latents, True, device, batch=12)
            slow = rate(net, 1, False, device)  # one latent (320 samples) is plenty to time it
            rows.append(
                [
                    name,
                    device.type,
                    f"{fast:,.0f}",
                    f"{fast / 16000:.3f}x",
                    f"{batched:,.0f} ({12 * batched:,.0f})",
                    f"{slow:,.1f}",
                ]
            )
            print(rows[-1], flush=True)
    body = f"""## WaveNet generation

{stamp()} torch threads: {torch.get_num_threads()}. Cached: a ring buffer of past inputs per
layer, O(layers) per sample, the per-layer conditioning precomputed at the latent rate; batch 12:
the synthesize stage's batch (samples per second of each sequence, and in all); full rerun: the
whole prefix per sample (what the cache avoids), timed on the first 320 samples only, so its rate
falls further with length. The small net's loop is Python-bound, so batching pays: 12 sequences
take less than twice the time per step of one.

{
        table(
            [
                "config",
                "device",
                "cached samples/s",
                "real time",
                "batch 12: per sequence (all)",
                "full-rerun samples/s",
            ],
            rows,
        )
    }
"""
    update_section("wavenet", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
