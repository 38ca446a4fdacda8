"""WaveNet decoder (Chorowski et al. 2019, after van den Oord et al. 2016), `model.decoder:
wavenet`.

- mu-law companding of audio to 256 classes (mu = 255) and back;
- an autoregressive stack of dilated causal convolutions (kernel 2) with gated activations and
  residual and skip connections, locally conditioned on the 20 ms latents (a k=3 convolution
  over the latents, so each sees its neighbours, then each latent's output repeated for its 320
  samples; the per-layer 1x1 conditioning projections commute with the repetition, so they run
  at the latent rate, 320x cheaper than at the sample rate) and globally on a speaker vector;
- teacher forcing over a window of samples: only the window and the receptive field before it
  are computed, which is what makes CPU training affordable;
- generation one sample at a time with a queue per layer holding that layer's past inputs
  (O(layers) work per sample), or, for testing, by re-running the whole prefix.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from vqspeech.params import WaveNetParams

MU = 255
SAMPLES_PER_LATENT = 320  # 20 ms at 16 kHz: the latents' rate


def mulaw_encode(x: Tensor, mu: int = MU) -> Tensor:
    """Audio in [-1, 1] -> classes 0..mu (LongTensor)."""
    x = x.clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)
    return torch.floor((y + 1) / 2 * mu + 0.5).long()


def mulaw_decode(q: Tensor, mu: int = MU) -> Tensor:
    """Classes 0..mu -> audio in [-1, 1] (the centre of each class)."""
    y = 2 * q.double() / mu - 1
    return (torch.sign(y) * ((1 + mu) ** y.abs() - 1) / mu).float()


def dilations(layers_per_stack: int, stacks: int) -> list[int]:
    return [2**i for i in range(layers_per_stack)] * stacks


class WaveNet(nn.Module):
    def __init__(
        self,
        cfg: WaveNetParams,
        *,
        cond_dim: int,
        speaker_dim: int,
        upsample: int = SAMPLES_PER_LATENT,
    ) -> None:
        """`cfg` is `model.wavenet`; conditioned on latents of `cond_dim` (one per `upsample`
        samples: 20 ms) and a speaker vector of `speaker_dim`."""
        super().__init__()
        self.cfg = cfg
        self.classes, self.upsample_by = MU + 1, upsample
        self.dilations = dilations(cfg.layers_per_stack, cfg.stacks)
        self.receptive_field = sum(self.dilations) + 1  # samples
        r, s, n = cfg.residual_channels, cfg.skip_channels, len(self.dilations)
        self.embed = nn.Embedding(self.classes, r)
        self.upsample = nn.Conv1d(cond_dim, cond_dim, 3, padding=1)
        self.dilated = nn.ModuleList(nn.Conv1d(r, 2 * r, 2, dilation=d) for d in self.dilations)
        self.cond = nn.Conv1d(cond_dim, 2 * r * n, 1)  # every layer's projection at once
        self.speaker = nn.Linear(speaker_dim, 2 * r * n)
        # the last layer feeds the skips only: a residual 1x1 there would be an unused parameter
        # (dead weights, and an error under DDP)
        self.res = nn.ModuleList(nn.Conv1d(r, r, 1) for _ in self.dilations[:-1])
        self.skip = nn.ModuleList(nn.Conv1d(r, s, 1) for _ in self.dilations)
        self.out = nn.Sequential(
            nn.ReLU(), nn.Conv1d(s, s, 1), nn.ReLU(), nn.Conv1d(s, self.classes, 1)
        )

    def conditioning(self, latents: Tensor, speaker: Tensor) -> Tensor:
        """[B, L, E] latents, [B, S] speaker -> [B, 2R x layers, L]: each layer's conditioning
        input for the samples of each latent (local + global)."""
        c = self.cond(self.upsample(latents.transpose(1, 2)))
        return c + self.speaker(speaker)[:, :, None]

    def forward(
        self,
        audio: Tensor,
        latents: Tensor,
        speaker: Tensor,
        start: int = 0,
        stop: int | None = None,
    ) -> Tensor:
        """Teacher-forced logits [B, classes, stop - start]: position t predicts class t from
        the classes before it.

        audio: [B, T] classes with T = L x upsample; latents [B, L, E]; speaker [B, S]. Only
        samples [start - receptive field + 1, stop) go through the stack."""
        up = self.upsample_by
        t_total = latents.shape[1] * up
        if audio.shape[1] != t_total:
            raise ValueError(f"{audio.shape[1]} samples but {latents.shape[1]} latents x {up}")
        stop = t_total if stop is None else stop
        if not 0 <= start < stop <= t_total:
            raise ValueError(f"window [{start}, {stop}) outside [0, {t_total})")
        first = max(0, start - (self.receptive_field - 1))
        prev = F.pad(audio, (1, 0))[:, first:stop]  # input t is sample t - 1 (class 0 before)
        lo, hi = first // up, -(-stop // up)  # the latents the computed samples belong to
        c = self.conditioning(latents, speaker)[:, :, lo:hi]  # all latents: k=3 sees neighbours
        # repeat each latent's column for its samples (expand: the backward is a cheap sum)
        c = c[:, :, :, None].expand(-1, -1, -1, up).reshape(c.shape[0], c.shape[1], -1)
        c = c[:, :, first - lo * up : stop - lo * up].chunk(len(self.dilated), dim=1)
        h = self.embed(prev).transpose(1, 2)
        skips: Tensor | int = 0
        for i, (conv, ci, skip, d) in enumerate(
            zip(self.dilated, c, self.skip, self.dilations, strict=True)
        ):
            a, b = (conv(F.pad(h, (d, 0))) + ci).chunk(2, dim=1)
            g = torch.tanh(a) * torch.sigmoid(b)
            if i < len(self.res):
                h = h + self.res[i](g)
            skips = skips + skip(g)
        return self.out(skips[:, :, start - first :])

    @torch.no_grad()
    def generate(
        self,
        latents: Tensor,
        speaker: Tensor,
        generator: torch.Generator | None = None,
        cached: bool = True,
        progress: Callable[[int], object] | None = None,
    ) -> Tensor:
        """Sample classes [B, L * upsample] one at a time. `cached` keeps a queue of past layer
        inputs (O(layers) per sample); otherwise the whole prefix is re-run at every step (for
        tests). Both draw the same uniforms from `generator`, so they give the same samples.
        `progress(n)` is called after every `upsample` samples with n = samples done."""
        up = self.upsample_by
        b, t_total = latents.shape[0], latents.shape[1] * up
        out = torch.zeros(b, t_total, dtype=torch.long, device=latents.device)
        u = torch.rand(t_total, b, generator=generator, dtype=torch.float64).to(latents.device)
        if not cached:
            for t in range(t_total):
                logits = self._prefix_logits(out, latents, speaker, t)
                out[:, t] = _draw(logits, u[t])
            return out
        cond = self.conditioning(latents, speaker).chunk(len(self.dilated), dim=1)
        r = self.cfg.residual_channels
        # ring buffers [d, B, R]: slot heads[i] holds layer i's input from d steps ago
        queues = [
            torch.zeros(d, b, r, device=latents.device, dtype=latents.dtype) for d in self.dilations
        ]
        heads = [0] * len(queues)
        taps = [(c.weight[:, :, 0].T, c.weight[:, :, 1].T, c.bias) for c in self.dilated]
        res = [(m.weight[:, :, 0].T, m.bias) for m in self.res]
        skip = [(m.weight[:, :, 0].T, m.bias) for m in self.skip]
        prev = torch.zeros(b, dtype=torch.long, device=latents.device)  # class 0 before start
        for t in range(t_total):
            h = self.embed(prev)
            skips: Tensor | int = 0
            for i, ((w0, w1, bias), (ws, bs)) in enumerate(zip(taps, skip, strict=True)):
                z = torch.addmm(bias, queues[i][heads[i]], w0)  # read the slot, then reuse it
                queues[i][heads[i]] = h
                heads[i] = (heads[i] + 1) % len(queues[i])
                z = z + h @ w1 + cond[i][:, :, t // up]
                a, g2 = z.chunk(2, dim=1)
                g = torch.tanh(a) * torch.sigmoid(g2)
                if i < len(res):
                    h = h + torch.addmm(res[i][1], g, res[i][0])
                skips = skips + torch.addmm(bs, g, ws)
            logits = self.out(skips[:, :, None])[:, :, 0]
            prev = _draw(logits, u[t])
            out[:, t] = prev
            if progress is not None and (t + 1) % up == 0:
                progress(t + 1)
        return out

    def _prefix_logits(self, audio: Tensor, latents: Tensor, speaker: Tensor, t: int) -> Tensor:
        """Logits for position t from the classes before it, by a full pass over 0..t."""
        return self.forward(audio, latents, speaker)[:, :, t]


def _draw(logits: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling with given uniforms: the same u gives the same class."""
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(dim=-1)
    return torch.searchsorted(cdf, u[:, None]).clamp(max=logits.shape[-1] - 1)[:, 0]
