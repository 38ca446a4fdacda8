"""The model of `params.model`: a VQ-VAE (`family: vqvae`) or a VQ-CPC (`family: vqcpc`).

Both have `encoder`, `quantizer`, `config()`, `encode(x) -> (latents, QuantizerOutput)`,
`forward(x, speaker, audio)` with `.vq` on its output and `losses(x, out)`, a dict whose first
entry is the objective the trainer adds to the quantizer's loss (the others are logged).
"""

from __future__ import annotations

from vqspeech.model.vqcpc import VQCPC
from vqspeech.model.vqvae import VQVAE
from vqspeech.params import ModelParams

UnitModel = VQVAE | VQCPC


def build(cfg: ModelParams, *, input_dim: int, n_speakers: int) -> UnitModel:
    """A fresh model of `cfg`'s family."""
    family = VQCPC if cfg.family == "vqcpc" else VQVAE
    return family(cfg, input_dim=input_dim, n_speakers=n_speakers)
