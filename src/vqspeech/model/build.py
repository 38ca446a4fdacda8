"""The model of `params.model`: a VQ-VAE (`family: vqvae`), a VQ-CPC (`family: vqcpc`), a CPC
whose units are k-means of its latents (`family: cpc`, the VQCPC class without its quantizer in
training) or a masked predictor of k-means classes of its input (`family: hubert`), whose units
are k-means of its latents too.

Both have `encoder`, `quantizer`, `config()`, `encode(x) -> (latents, QuantizerOutput)`,
`forward(x, speaker, audio)` with `.vq` on its output (None for a CPC or HuBERT, whose
quantizer takes no part in training) and `losses(x, out)`, a dict whose first entry is the
objective the trainer adds to the quantizer's loss (the others are logged).
"""

from __future__ import annotations

from vqspeech.model.hubert import Hubert
from vqspeech.model.vqcpc import VQCPC
from vqspeech.model.vqvae import VQVAE
from vqspeech.params import ModelParams

UnitModel = VQVAE | VQCPC | Hubert


def build(
    cfg: ModelParams, *, input_dim: int, n_speakers: int, output_dim: int | None = None
) -> UnitModel:
    """A fresh model of `cfg`'s family; `output_dim`: the VQ-VAE decoder's frames when
    `model.target` is not the input (None: the input's)."""
    if cfg.family in ("vqcpc", "cpc", "hubert"):
        if output_dim is not None:
            raise ValueError(f"a {cfg.family} model has no decoder: output_dim does not apply")
        if cfg.family == "hubert":
            return Hubert(cfg, input_dim=input_dim, n_speakers=n_speakers)
        return VQCPC(cfg, input_dim=input_dim, n_speakers=n_speakers)
    return VQVAE(cfg, input_dim=input_dim, n_speakers=n_speakers, output_dim=output_dim)
