"""Vector quantization of one vector per time step (van den Oord et al. 2017).

`VectorQuantizer` maps z: [B, T, E] to the nearest of K codebook vectors for every (b, t) and
passes gradients straight through. Two ways to learn the codebook:
- `kind="loss"`: codebook loss ||sg(z) - e||^2 plus commitment beta * ||z - sg(e)||^2;
- `kind="ema"`: the codebook follows an exponential moving average of the vectors assigned to each
  code (decay `ema_decay`), only the commitment loss is returned, and codes whose average usage
  falls below `dead_threshold` are restarted on random inputs of the batch.
Under torch.distributed the EMA statistics are all-reduced and restarts are broadcast from rank
0, so every rank keeps the same codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class QuantizerOutput:
    quantized: Tensor  # [B, T, E], straight-through
    codes: Tensor  # LongTensor [B, T]
    loss: Tensor  # scalar: commitment (+ codebook when not EMA)
    commitment: Tensor
    codebook_loss: Tensor
    perplexity: Tensor
    codes_used: Tensor
    distances: Tensor  # [B, T, K] squared Euclidean distances


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def kmeans(
    x: Tensor, k: int, iterations: int = 20, generator: torch.Generator | None = None
) -> Tensor:
    """Lloyd's k-means on rows of x: [N, E] -> centres [k, E] (k-means++ seeding).

    Empty clusters keep their previous centre. Needs N >= k.
    """
    if len(x) < k:
        raise ValueError(f"k-means needs at least {k} vectors, got {len(x)}")
    x = x.float()
    first = torch.randint(len(x), (1,), generator=generator, device="cpu").item()
    centres = [x[first]]
    d2 = torch.cdist(x, x[first : first + 1]).squeeze(1) ** 2
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / len(d2))
        nxt = torch.multinomial(probs.cpu(), 1, generator=generator).item()
        centres.append(x[nxt])
        d2 = torch.minimum(d2, torch.cdist(x, x[nxt : nxt + 1]).squeeze(1) ** 2)
    c = torch.stack(centres)
    for _ in range(iterations):
        assign = torch.cdist(x, c).argmin(dim=1)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        filled = counts > 0
        c[filled] = sums[filled] / counts[filled, None]
    return c


class VectorQuantizer(nn.Module):
    def __init__(
        self,
        *,
        dim: int,
        kind: str,
        codebook_size: int,
        beta: float,
        ema_decay: float,
        dead_threshold: float,
        kmeans_init: bool,
        kmeans_batches: int,
        eps: float = 1e-5,
    ) -> None:
        """The arguments besides `dim` are `model.quantizer` (QuantizerParams), whose defaults
        are the only ones: `VectorQuantizer(dim=E, **params.model.quantizer.model_dump())`.

        kind: "ema" (codebook moved by exponential moving averages, decay `ema_decay`; codes used
        less than `dead_threshold` times per batch restart at a random latent) or "loss" (the
        codebook is a parameter trained by the codebook loss). `beta` weighs the commitment.
        `kmeans_init`: the training loop sets the codebook to k-means of the encoder's latents on
        `kmeans_batches` batches of crops before the first step (`set_codebook`)."""
        super().__init__()
        if kind not in ("ema", "loss"):
            raise ValueError(f"quantizer kind must be 'ema' or 'loss', not {kind!r}")
        self.codebook_size, self.dim, self.beta = codebook_size, dim, beta
        self.kmeans_init, self.kmeans_batches = kmeans_init, kmeans_batches
        self.ema = kind == "ema"
        self.decay, self.dead_threshold, self.eps = ema_decay, dead_threshold, eps
        init = torch.randn(codebook_size, dim) / dim**0.5
        if self.ema:
            self.register_buffer("codebook", init)
            self.register_buffer("ema_count", torch.ones(codebook_size))
            self.register_buffer("ema_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)

    @torch.no_grad()
    def set_codebook(self, centres: Tensor) -> None:
        """Replace the codebook (e.g. by k-means centres); EMA statistics restart from it."""
        if _distributed():
            dist.broadcast(centres, src=0)
        self.codebook.data.copy_(centres)
        if self.ema:
            self.ema_count.fill_(1.0)
            self.ema_sum.copy_(centres)

    @torch.no_grad()
    def nearest(self, z: Tensor) -> QuantizerOutput:
        """`forward` without updating anything (no EMA step, no restart), whatever the mode: what
        encoding calls, so that encoding with a model still in training mode changes nothing."""
        was = self.training
        self.train(False)
        try:
            return self(z)
        finally:
            self.train(was)

    def forward(self, z: Tensor) -> QuantizerOutput:
        """z: [B, T, E] -> nearest code per time step."""
        B, T, E = z.shape
        flat = z.reshape(B * T, E)
        codebook = self.codebook
        distances = (
            flat.pow(2).sum(1, keepdim=True)
            - 2 * flat @ codebook.t()
            + codebook.pow(2).sum(1)[None, :]
        )
        codes = distances.argmin(dim=1)
        quantized = F.embedding(codes, codebook)
        one_hot = F.one_hot(codes, self.codebook_size).type(flat.dtype)
        if self.ema and self.training:  # codes and vectors stay those of the pre-update codebook
            self._ema_update(flat.detach(), one_hot.detach())
        commitment = self.beta * F.mse_loss(flat, quantized.detach())
        codebook_loss = (
            torch.zeros((), device=z.device) if self.ema else F.mse_loss(quantized, flat.detach())
        )
        st = flat + (quantized - flat).detach()
        usage = one_hot.float().mean(0)
        perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
        return QuantizerOutput(
            quantized=st.reshape(B, T, E),
            codes=codes.reshape(B, T),
            loss=commitment + codebook_loss,
            commitment=commitment,
            codebook_loss=codebook_loss,
            perplexity=perplexity,
            codes_used=(usage > 0).sum(),
            distances=distances.reshape(B, T, -1),
        )

    @torch.no_grad()
    def _ema_update(self, flat: Tensor, one_hot: Tensor) -> None:
        counts = one_hot.float().sum(0)
        sums = one_hot.float().t() @ flat.float()
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (n + self.codebook_size * self.eps) * n
        self.codebook.copy_(self.ema_sum / smoothed[:, None])
        if self.dead_threshold > 0:
            self._restart_dead(flat)

    @torch.no_grad()
    def _restart_dead(self, flat: Tensor) -> None:
        dead = self.ema_count < self.dead_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        pick = torch.randint(len(flat), (n_dead,), device=flat.device)
        fresh = flat[pick].to(self.codebook.dtype)
        if _distributed():
            dist.broadcast(fresh, src=0)
        self.codebook[dead] = fresh
        self.ema_sum[dead] = fresh
        self.ema_count[dead] = 1.0
