"""Time-jitter (Chorowski et al. 2019): latents may be swapped for a neighbour, in training."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def jitter_indices(B: int, T: int, p: float, device: torch.device | str = "cpu") -> Tensor:
    """LongTensor [B, T]: for each position its own index, or with probability p/2 each the left
    or the right neighbour's (clamped at the ends), independently per item and position."""
    r = torch.rand(B, T, device=device)
    idx = torch.arange(T, device=device).expand(B, T).clone()
    idx[r < p / 2] -= 1
    idx[(r >= p / 2) & (r < p)] += 1
    return idx.clamp_(0, T - 1)


class TimeJitter(nn.Module):
    def __init__(self, p: float = 0.12) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"jitter probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, T, E]; unchanged in eval mode or when p = 0."""
        if not self.training or self.p == 0:
            return x
        B, T, E = x.shape
        idx = jitter_indices(B, T, self.p, x.device)
        return x.gather(1, idx.unsqueeze(-1).expand(B, T, E))
