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


def build(
    cfg: ModelParams, *, input_dim: int, n_speakers: int, output_dim: int | None = None
) -> UnitModel:
    """A fresh model of `cfg`'s family; `output_dim`: the VQ-VAE decoder's frames when
    `model.target` is not the input (None: the input's)."""
    if cfg.family == "vqcpc":
        if output_dim is not None:
            raise ValueError("a VQ-CPC has no decoder: output_dim does not apply")
        return VQCPC(cfg, input_dim=input_dim, n_speakers=n_speakers)
    return VQVAE(cfg, input_dim=input_dim, n_speakers=n_speakers, output_dim=output_dim)
