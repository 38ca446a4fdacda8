"""WaveNet generation of the chosen excerpts: reconstruction and conversions, in one batch."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.model.wavenet import mulaw_decode

if TYPE_CHECKING:
    from vqspeech.model.vqvae import VQVAE


log = logging.getLogger(__name__)


def generate(
    model: VQVAE,
    chosen: Sequence[Utterance],
    starts: Sequence[int],
    goals: Sequence[Sequence[str]],
    speakers: Sequence[str],
    n_lat: int,
    norm: Normalizer,
    seed: int,
    bar: Any,
) -> tuple[list[list[np.ndarray]], dict[str, object]]:
    """The reconstruction (mean speaker embedding) and the conversions to `goals` of the
    `n_lat` latents from `starts` of each utterance, generated in one batch, sample by sample;
    `bar.update(1)` after every latent. Returns (per utterance: [reconstruction, *conversions]
    as float audio, the generation speed)."""
    device = next(model.parameters()).device
    latents = []
    for u, s in zip(chosen, starts, strict=True):
        x = torch.from_numpy(norm(u.features))[None].to(device)
        _, vq = model.encode(x)  # the whole utterance (context), then the excerpt's latents
        latents.append(vq.quantized[0, s : s + n_lat])
    rows, ids = [], []
    index = {s: i for i, s in enumerate(speakers)}
    for q, goal in zip(latents, goals, strict=True):
        for spk in [-1, *(index[t] for t in goal)]:
            rows.append(q)
            ids.append(spk)
    batch_latents = torch.stack(rows)
    spk_vectors = model.speaker_vectors(torch.tensor(ids, device=device))
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    # generate() reports after every latent's samples
    classes = model.decoder.generate(
        batch_latents, spk_vectors, generator, progress=lambda t: bar.update(1)
    )
    seconds = time.perf_counter() - start
    audio = mulaw_decode(classes.cpu()).numpy()
    per = 1 + len(goals[0])
    out = [[audio[i * per + j] for j in range(per)] for i in range(len(chosen))]
    steps = classes.shape[1]
    speed = {
        "device": device.type,
        "sequences": len(rows),
        "steps_per_second": round(steps / seconds, 1),  # samples of one sequence per second
        "samples_per_second": round(steps * len(rows) / seconds, 1),  # all sequences together
        "seconds": round(seconds, 1),
    }
    log.info(
        "generated %d x %d samples in %.1f s (%s samples/s in all)",
        len(rows),
        steps,
        seconds,
        speed["samples_per_second"],
    )
    return out, speed
