"""A unit-to-spectrogram decoder trained on frozen units: one per unit system, all the same size
and trained for the same number of steps, so the comparison of the systems' resynthesis is fair.

In: a system's code sequence (one code per 20 ms latent, as every system of the evaluate stage
gives) and a speaker id. Out: 80-band log-mel frames at 10 ms (`vocoder.log_mel`), two per code,
standardized by the train split's statistics. The network is non-causal and small: a code
embedding plus a speaker embedding, residual convolutions at 20 ms, a repeat to 10 ms, residual
convolutions at 10 ms, and a linear map to the bands; at the defaults (kernel 5, dilations 1, 2,
4 at each rate) it sees about ±0.4 s. Trained by L1
on random crops of the train split's utterances (Adam, seeded), as the ZeroSpeech 2019 baseline's
spectrogram decoders were, at a size that trains in a minute or two on 2 CPU cores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

FRAMES_PER_UNIT = 2  # 20 ms codes, 10 ms log-mel frames


@dataclass(frozen=True)
class DecoderConfig:
    """The decoder's size and training budget (`synthesize.decoder` in params.yaml)."""

    channels: int = 128
    speaker_dim: int = 32
    blocks: int = 3  # residual blocks at each rate (20 ms, then 10 ms)
    kernel: int = 5
    steps: int = 1500
    batch_size: int = 16
    crop_units: int = 50  # 1 s
    learning_rate: float = 1e-3


class _Block(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        pad = dilation * (kernel // 2)
        self.conv = nn.Conv1d(channels, channels, kernel, padding=pad, dilation=dilation)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(F.gelu(self.conv(x)))


class UnitDecoder(nn.Module):
    def __init__(self, units: int, speakers: int, n_mels: int, cfg: DecoderConfig) -> None:
        super().__init__()
        if cfg.kernel % 2 == 0:
            raise ValueError(f"the decoder's kernel must be odd, not {cfg.kernel}")
        self.units, self.speakers, self.n_mels, self.cfg = units, speakers, n_mels, cfg
        c = cfg.channels
        self.unit_embedding = nn.Embedding(units, c)
        self.speaker_embedding = nn.Embedding(speakers, cfg.speaker_dim)
        self.condition = nn.Linear(cfg.speaker_dim, c)
        self.coarse = nn.Sequential(*(_Block(c, cfg.kernel, 2**i) for i in range(cfg.blocks)))
        self.fine = nn.Sequential(*(_Block(c, cfg.kernel, 2**i) for i in range(cfg.blocks)))
        self.out = nn.Conv1d(c, n_mels, 1)

    def forward(self, units: Tensor, speaker: Tensor | None) -> Tensor:
        """units [B, L] (long), speaker [B] -> standardized log-mel [B, 2 L, n_mels]; speaker
        None: the mean of the training speakers' embeddings (a speaker it was not trained on)."""
        if speaker is None:
            e = self.speaker_embedding.weight.mean(dim=0, keepdim=True).expand(len(units), -1)
        else:
            e = self.speaker_embedding(speaker)
        s = self.condition(e)[:, :, None]  # [B, C, 1]
        x = self.unit_embedding(units).transpose(1, 2) + s
        x = self.coarse(x).repeat_interleave(FRAMES_PER_UNIT, dim=2) + s
        return self.out(self.fine(x)).transpose(1, 2)


def crops(
    lengths: np.ndarray, crop: int, count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` crops of `crop` units: (utterance index, first unit), utterances drawn in
    proportion to their length among those at least `crop` long. ValueError when none is."""
    ok = np.flatnonzero(lengths >= crop)
    if len(ok) == 0:
        raise ValueError(
            f"no train utterance has {crop} units for a crop (the longest has "
            f"{int(lengths.max()) if len(lengths) else 0})"
        )
    weights = lengths[ok].astype(np.float64)
    utt = ok[rng.choice(len(ok), size=count, p=weights / weights.sum())]
    start = rng.integers(0, lengths[utt] - crop + 1)
    return utt, start


def train(
    units: Sequence[np.ndarray],
    speakers: np.ndarray,
    frames: Sequence[np.ndarray],
    n_units: int,
    n_speakers: int,
    cfg: DecoderConfig,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> UnitDecoder:
    """A decoder trained on utterances: units[i] [L_i] codes, speakers[i] its speaker id,
    frames[i] [>= 2 L_i, n_mels] standardized log-mel (frames past 2 L_i are not used).
    Deterministic for a seed on one machine; `on_step(step, loss)` after every step."""
    if not (len(units) == len(speakers) == len(frames)) or not units:
        raise ValueError(
            f"{len(units)} unit sequences, {len(speakers)} speakers, {len(frames)} frame "
            "sequences: one of each per train utterance is needed"
        )
    for i, (u, f) in enumerate(zip(units, frames, strict=True)):
        if len(f) < FRAMES_PER_UNIT * len(u):
            raise ValueError(f"utterance {i}: {len(u)} units but only {len(f)} log-mel frames")
        if len(u) and (u.min() < 0 or u.max() >= n_units):
            raise ValueError(f"utterance {i}: codes outside [0, {n_units})")
    torch.manual_seed(seed)
    rng = np.random.default_rng([seed, 30])
    model = UnitDecoder(n_units, n_speakers, frames[0].shape[1], cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    lengths = np.array([len(u) for u in units])
    c, r = cfg.crop_units, FRAMES_PER_UNIT
    model.train()
    for step in range(1, cfg.steps + 1):
        utt, start = crops(lengths, c, cfg.batch_size, rng)
        picks = list(zip(utt, start, strict=True))
        x = torch.from_numpy(np.stack([units[u][s : s + c] for u, s in picks]))
        y = torch.from_numpy(np.stack([frames[u][r * s : r * (s + c)] for u, s in picks]))
        loss = F.l1_loss(model(x.long(), torch.from_numpy(speakers[utt]).long()), y.float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_step is not None:
            on_step(step, float(loss.detach()))
    return model.eval()


@torch.no_grad()
def decode(model: UnitDecoder, units: np.ndarray, speaker: int | None) -> np.ndarray:
    """float32 [2 L, n_mels] standardized log-mel of one utterance's codes [L] as `speaker`
    (None: the mean training speaker)."""
    x = torch.from_numpy(np.asarray(units, dtype=np.int64))[None]
    who = None if speaker is None else torch.tensor([speaker])
    return model(x, who).squeeze(0).numpy().astype(np.float32)
