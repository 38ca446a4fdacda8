"""Benchmark WaveNet generation speed on CPU (and GPU when present): samples per second of the
cached (queue per layer) generation against re-running the whole prefix.

Usage: python benchmarks/wavenet.py [--seconds 0.1]
"""

from __future__ import annotations

import time

import torch
import typer
from benchlib import stamp, table, update_section

from vqspeech.model.wavenet import WaveNet, WaveNetConfig

CONFIGS = {
    "small (64 ch, 2 x 10 layers)": WaveNetConfig(layers_per_stack=10, stacks=2),
    "paper-scale (256 ch, 3 x 10 layers)": WaveNetConfig(
        residual_channels=256, skip_channels=256, layers_per_stack=10, stacks=3
    ),
}


def rate(net: WaveNet, latents: int, cached: bool, device: torch.device) -> float:
    z = torch.randn(1, latents, net.cfg.cond_dim, device=device)
    spk = torch.randn(1, net.cfg.speaker_dim, device=device)
    start = time.perf_counter()
    out = net.generate(z, spk, torch.Generator().manual_seed(0), cached=cached)
    return out.shape[1] / (time.perf_counter() - start)


def main(seconds: float = 0.1) -> None:
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    rows = []
    for name, cfg in CONFIGS.items():
        for device in devices:
            net = WaveNet(cfg).to(device).eval()
            latents = max(1, round(seconds / 0.02))
            fast = rate(net, latents, True, device)
            slow = rate(net, 1, False, device)  # one latent (320 samples) is plenty to time it
            rows.append([name, device.type, f"{fast:,.0f}", f"{fast / 16000:.3f}x",
                         f"{slow:,.1f}"])  # fmt: skip
            print(rows[-1], flush=True)
    body = f"""## WaveNet generation (one utterance, batch 1)

{stamp()} torch threads: {torch.get_num_threads()}. Cached: a queue of past inputs per layer,
O(layers) per sample; full rerun: the whole prefix per sample (what the cache avoids), timed on the
first 320 samples only, so its rate falls further with length. The per-sample loop is Python-bound
(about 10 small ops per layer): fusing or batching utterances is the next step.

{table(["config", "device", "cached samples/s", "real time", "full-rerun samples/s"], rows)}
"""
    update_section("wavenet", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
