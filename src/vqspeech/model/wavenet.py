"""WaveNet decoder (Chorowski et al. 2019, after van den Oord et al. 2016): groundwork for
`model.decoder: wavenet` (issue 7; not wired into training yet).

- mu-law companding of audio to 256 classes (mu = 255) and back;
- an autoregressive stack of dilated causal convolutions (kernel 2) with gated activations and
  residual and skip connections, locally conditioned on the 20 ms latents upsampled to the sample
  rate (repeated 320 times, then a k=3 convolution over the repeated sequence, which sees the
  latents only, never the audio) and globally on a speaker vector;
- generation one sample at a time with a queue per layer holding that layer's past inputs
  (O(layers) work per sample), or, for testing, by re-running the whole prefix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

MU = 255


def mulaw_encode(x: Tensor, mu: int = MU) -> Tensor:
    """Audio in [-1, 1] -> classes 0..mu (LongTensor)."""
    x = x.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((y + 1) / 2 * mu + 0.5).long()


def mulaw_decode(q: Tensor, mu: int = MU) -> Tensor:
    """Classes 0..mu -> audio in [-1, 1] (the centre of each class)."""
    y = 2 * q.double() / mu - 1
    return (torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu).float()


@dataclass(frozen=True)
class WaveNetConfig:
    cond_dim: int = 64  # latent dimension
    speaker_dim: int = 64
    classes: int = MU + 1
    residual_channels: int = 64
    skip_channels: int = 64
    layers_per_stack: int = 10  # dilations 1, 2, ..., 2^(n-1)
    stacks: int = 1
    upsample: int = 320  # samples per latent: 20 ms at 16 kHz

    @property
    def dilations(self) -> list[int]:
        return [2**i for i in range(self.layers_per_stack)] * self.stacks

    @property
    def receptive_field(self) -> int:
        return sum(self.dilations) + 1


class WaveNet(nn.Module):
    def __init__(self, cfg: WaveNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        r, s = cfg.residual_channels, cfg.skip_channels
        self.embed = nn.Embedding(cfg.classes, r)
        self.upsample = nn.Conv1d(cfg.cond_dim, cfg.cond_dim, 3, padding=1)
        self.dilated = nn.ModuleList(nn.Conv1d(r, 2 * r, 2, dilation=d) for d in cfg.dilations)
        self.cond = nn.ModuleList(nn.Conv1d(cfg.cond_dim, 2 * r, 1) for _ in cfg.dilations)
        self.speaker = nn.ModuleList(nn.Linear(cfg.speaker_dim, 2 * r) for _ in cfg.dilations)
        self.res = nn.ModuleList(nn.Conv1d(r, r, 1) for _ in cfg.dilations)
        self.skip = nn.ModuleList(nn.Conv1d(r, s, 1) for _ in cfg.dilations)
        self.out = nn.Sequential(nn.ReLU(), nn.Conv1d(s, s, 1), nn.ReLU(),
                                 nn.Conv1d(s, cfg.classes, 1))  # fmt: skip

    def conditioning(self, latents: Tensor) -> Tensor:
        """[B, L, E] latents -> [B, E, L * upsample] per-sample conditioning."""
        rep = latents.transpose(1, 2).repeat_interleave(self.cfg.upsample, dim=2)
        return self.upsample(rep)

    def forward(self, audio: Tensor, latents: Tensor, speaker: Tensor) -> Tensor:
        """Teacher-forced logits [B, classes, T]: position t predicts class t from classes < t.

        audio: [B, T] classes with T = L * upsample; latents [B, L, E]; speaker [B, S]."""
        c = self.conditioning(latents)
        if c.shape[2] != audio.shape[1]:
            raise ValueError(f"{audio.shape[1]} samples but {c.shape[2]} conditioning steps")
        prev = F.pad(audio, (1, 0))[:, :-1]  # shifted right: sample t sees samples < t
        h = self.embed(prev).transpose(1, 2)
        skips = 0
        for conv, cond, spk, res, skip, d in zip(self.dilated, self.cond, self.speaker,
                                                 self.res, self.skip, self.cfg.dilations,
                                                 strict=True):  # fmt: skip
            z = conv(F.pad(h, (d, 0))) + cond(c) + spk(speaker)[:, :, None]
            a, b = z.chunk(2, dim=1)
            g = torch.tanh(a) * torch.sigmoid(b)
            h = h + res(g)
            skips = skips + skip(g)
        return self.out(skips)

    @torch.no_grad()
    def generate(
        self, latents: Tensor, speaker: Tensor, generator: torch.Generator | None = None,
        cached: bool = True,
    ) -> Tensor:  # fmt: skip
        """Sample classes [B, L * upsample] one at a time. `cached` keeps a queue of past layer
        inputs (O(layers) per sample); otherwise the whole prefix is re-run at every step (for
        tests). Both draw the same uniforms from `generator`, so they give the same samples."""
        c = self.conditioning(latents)
        b, _, t_total = c.shape
        out = torch.zeros(b, t_total, dtype=torch.long, device=c.device)
        u = torch.rand(t_total, b, generator=generator, dtype=torch.float64).to(c.device)
        if not cached:
            for t in range(t_total):
                logits = self._prefix_logits(out[:, : t + 1], latents, speaker, t)
                out[:, t] = _draw(logits, u[t])
            return out
        r = self.cfg.residual_channels
        queues = [torch.zeros(b, r, d, device=c.device, dtype=c.dtype) for d in self.cfg.dilations]
        spk_terms = [s(speaker) for s in self.speaker]
        cond_terms = [cond(c) for cond in self.cond]  # [B, 2R, T] each
        prev = torch.zeros(b, dtype=torch.long, device=c.device)  # class 0 before the start
        for t in range(t_total):
            h = self.embed(prev)
            skips = 0
            for i, (conv, res, skip) in enumerate(zip(self.dilated, self.res, self.skip,
                                                      strict=True)):  # fmt: skip
                past = queues[i][:, :, 0]  # this layer's input d steps ago
                queues[i] = torch.cat([queues[i][:, :, 1:], h[:, :, None]], dim=2)
                w = conv.weight  # [2R, R, 2]: tap 0 on x[t - d], tap 1 on x[t]
                z = past @ w[:, :, 0].T + h @ w[:, :, 1].T + conv.bias
                z = z + cond_terms[i][:, :, t] + spk_terms[i]
                a, g2 = z.chunk(2, dim=1)
                g = torch.tanh(a) * torch.sigmoid(g2)
                h = h + res(g[:, :, None])[:, :, 0]
                skips = skips + skip(g[:, :, None])[:, :, 0]
            logits = self.out(skips[:, :, None])[:, :, 0]
            prev = _draw(logits, u[t])
            out[:, t] = prev
        return out

    def _prefix_logits(self, prefix: Tensor, latents: Tensor, speaker: Tensor, t: int) -> Tensor:
        """Logits for position t from the classes before it (prefix[:, :t]), by a full pass."""
        upsample = self.cfg.upsample
        n_lat = latents.shape[1]
        padded = F.pad(prefix, (0, n_lat * upsample - prefix.shape[1]))
        return self.forward(padded, latents, speaker)[:, :, t]


def _draw(logits: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling with given uniforms: the same u gives the same class."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(dim=-1)
    return torch.searchsorted(cdf, u[:, None]).clamp(max=logits.shape[-1] - 1)[:, 0]
