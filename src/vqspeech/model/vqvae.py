"""The VQ-VAE of Chorowski et al. 2019, with the encoder/deconvolution-decoder shape of the
reference implementation and none of its bugs (DESIGN.md): every residual block has its own
weights, quantization is one vector per 20 ms step, and the speaker embedding is a registered,
trained module.

Shapes: features x [B, T, D] (10 ms frames) -> latents z [B, T // 2, E] (20 ms) -> codes
[B, T // 2] -> reconstruction [B, 2 (T // 2), D].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from vqspeech.model.jitter import TimeJitter
from vqspeech.model.quantizer import QuantizerOutput, VectorQuantizer


@dataclass(frozen=True)
class ModelConfig:
    input_dim: int = 39
    channels: int = 128
    res_blocks: int = 2
    embedding_dim: int = 64
    projection_kernel: int = 1
    codebook_size: int = 64
    beta: float = 0.25
    ema: bool = True
    ema_decay: float = 0.99
    dead_threshold: float = 0.0
    jitter: float = 0.12
    n_speakers: int = 1
    speaker_dim: int = 64

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv3(relu(x)))): each block has weights of its own."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            nn.Conv1d(channels, channels, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class Encoder(nn.Module):
    """Two k=3 convs, a k=4 stride-2 conv (10 -> 20 ms), two k=3 convs, residual blocks, then a
    projection to the codebook dimension."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        C = cfg.channels
        self.convs = nn.Sequential(
            nn.Conv1d(cfg.input_dim, C, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(C, C, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(C, C, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(C, C, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(C, C, 3, padding=1),
        )
        self.res = nn.Sequential(*[ResidualBlock(C) for _ in range(cfg.res_blocks)])
        k = cfg.projection_kernel
        self.project = nn.Sequential(
            nn.ReLU(), nn.Conv1d(C, cfg.embedding_dim, k, padding=(k - 1) // 2)
        )

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, T, D] -> z: [B, T // 2, E]."""
        h = self.res(self.convs(x.transpose(1, 2)))
        return self.project(h).transpose(1, 2)


class Decoder(nn.Module):
    """The mirror: k=3 conv on [codes; speaker], residual blocks, k=4 stride-2 transposed conv
    (20 -> 10 ms), two k=3 convs, output projection."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        C = cfg.channels
        self.inp = nn.Conv1d(cfg.embedding_dim + cfg.speaker_dim, C, 3, padding=1)
        self.res = nn.Sequential(*[ResidualBlock(C) for _ in range(cfg.res_blocks)])
        self.up = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose1d(C, C, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(C, C, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(C, C, 3, padding=1),
            nn.ReLU(),
            nn.Conv1d(C, cfg.input_dim, 1),
        )

    def forward(self, q: Tensor, speaker: Tensor) -> Tensor:
        """q: [B, L, E], speaker: [B, S] -> [B, 2 L, D]."""
        s = speaker[:, :, None].expand(-1, -1, q.shape[1])
        h = self.res(self.inp(torch.cat([q.transpose(1, 2), s], dim=1)))
        return self.up(h).transpose(1, 2)


@dataclass
class VQVAEOutput:
    reconstruction: Tensor  # [B, 2 (T // 2), D]
    latents: Tensor  # [B, T // 2, E], before quantization
    vq: QuantizerOutput


class VQVAE(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = VectorQuantizer(
            codebook_size=cfg.codebook_size, dim=cfg.embedding_dim, beta=cfg.beta, ema=cfg.ema,
            ema_decay=cfg.ema_decay, dead_threshold=cfg.dead_threshold,
        )  # fmt: skip
        self.jitter = TimeJitter(cfg.jitter)
        self.speakers = nn.Embedding(cfg.n_speakers, cfg.speaker_dim)
        self.decoder = Decoder(cfg)

    def speaker_vectors(self, speaker: Tensor) -> Tensor:
        """Embeddings of speaker ids; id -1 (a speaker unseen in training) gets their mean."""
        known = speaker >= 0
        vectors = self.speakers(speaker.clamp(min=0))
        if not bool(known.all()):
            mean = self.speakers.weight.mean(0)
            vectors = torch.where(known[:, None], vectors, mean.expand_as(vectors))
        return vectors

    def forward(self, x: Tensor, speaker: Tensor) -> VQVAEOutput:
        z = self.encoder(x)
        with torch.autocast(z.device.type, enabled=False):  # nearest codes in float32, not bf16
            vq = self.quantizer(z.float())
        recon = self.decoder(self.jitter(vq.quantized), self.speaker_vectors(speaker))
        return VQVAEOutput(recon, z, vq)

    @torch.no_grad()
    def encode(self, x: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """Latents and codes of x: [B, T, D], without decoding."""
        z = self.encoder(x)
        with torch.autocast(z.device.type, enabled=False):
            return z, self.quantizer(z.float())


def reconstruction_loss(x: Tensor, recon: Tensor) -> Tensor:
    """MSE against the input frames the decoder covers (all but a trailing odd frame)."""
    return torch.nn.functional.mse_loss(recon, x[:, : recon.shape[1]])


def receptive_field(model: VQVAE) -> int:
    """Input frames seen by one latent: 1 + sum (k - 1) * (product of earlier strides)."""
    rf, jump = 1, 1
    for m in [*model.encoder.convs, *model.encoder.res.modules(), *model.encoder.project]:
        if isinstance(m, nn.Conv1d):
            rf += (m.kernel_size[0] - 1) * jump
            jump *= m.stride[0]
    return rf


def summary(model: VQVAE, hop_ms: float = 10.0, win_ms: float = 25.0) -> str:
    """Parameters per module and the encoder's receptive field."""
    lines = [f"{'module':<12}{'parameters':>12}"]
    total = 0
    for name, module in model.named_children():
        n = sum(p.numel() for p in module.parameters())
        total += n
        lines.append(f"{name:<12}{n:>12,}")
    lines.append(f"{'total':<12}{total:>12,}")
    rf = receptive_field(model)
    lines.append(
        f"encoder receptive field: {rf} frames = {(rf - 1) * hop_ms + win_ms:.0f} ms of audio; "
        f"one code per {2 * hop_ms:.0f} ms; codebook {model.cfg.codebook_size} x "
        f"{model.cfg.embedding_dim} ({'EMA' if model.cfg.ema else 'loss-trained'})"
    )
    return "\n".join(lines)
