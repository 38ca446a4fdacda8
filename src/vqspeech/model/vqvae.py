"""The VQ-VAE of Chorowski et al. 2019, with the encoder/deconvolution-decoder shape of the
reference implementation and none of its bugs (docs/design.md): every residual block has its own
weights, quantization is one vector per 20 ms step, and the speaker embedding is a registered,
trained module.

Shapes: features x [B, T, D] (10 ms frames) -> latents z [B, T // 2, E] (20 ms) -> codes
[B, T // 2] -> reconstruction [B, 2 (T // 2), D] (`decoder: deconv`), or, with `decoder:
wavenet`, logits [B, 256, W] of the mu-law classes of a window of W samples of the crop's audio
(the crop's 10 ms frames start every 160 samples: latent l covers samples [320 l, 320 (l + 1))).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx

from vqspeech.model.jitter import TimeJitter
from vqspeech.model.quantizer import QuantizerOutput, VectorQuantizer
from vqspeech.model.wavenet import SAMPLES_PER_LATENT, WaveNet, mulaw_encode
from vqspeech.params import ModelParams


class CausalConv1d(nn.Conv1d):
    """A Conv1d padded on the left only, by kernel - 1 - `lookahead`: output t sees inputs up to
    t * stride + lookahead, none later (the length is that of the centred conv, T // stride)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, lookahead: int = 0):
        super().__init__(cin, cout, kernel, stride=stride)
        self.left = kernel - 1 - lookahead

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(nn.functional.pad(x, (self.left, 0)))


def conv(cin: int, cout: int, kernel: int, stride: int = 1, causal: bool = False) -> nn.Conv1d:
    """A conv that keeps the length (divides it by `stride`): centred padding, or with `causal`
    left padding (the k=4 stride-2 conv sees its own 20 ms, frames 2t and 2t + 1, and no later)."""
    if causal:
        return CausalConv1d(cin, cout, kernel, stride, lookahead=stride - 1)
    return nn.Conv1d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2)


class ResidualBlock(nn.Module):
    """x + conv1x1(relu(conv_k(relu(x)))) (k = 3 unless given): each block has its own weights."""

    def __init__(self, channels: int, kernel: int = 3, causal: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(),
            conv(channels, channels, kernel, causal=causal),
            nn.ReLU(),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def encoder_args(cfg: ModelParams) -> dict[str, object]:
    """The `model.*` values the encoder is built from, by name."""
    keys = ("channels", "res_blocks", "embedding_dim", "projection_kernel", "latent_norm")
    return {**{key: getattr(cfg, key) for key in keys}, "kind": cfg.encoder}


class Encoder(nn.Module):
    """Two k=3 convs, a k=4 stride-2 conv (10 -> 20 ms), two k=3 convs, residual blocks, then a
    projection to the codebook dimension. Centred (each latent sees 12 frames either side at the
    defaults) or, `causal`, left-padded: latent t sees no input after its own 20 ms.

    `kind: frame` (`model.encoder`) is the published VQ-CPC's frame-local encoder: the k=4
    stride-2 conv alone, then per-latent layers (every other conv and the residual blocks of
    kernel 1): a latent sees 4 frames (40 ms; 55 ms of audio), so any longer context must come
    from a context network."""

    def __init__(
        self,
        input_dim: int,
        *,
        channels: int,
        res_blocks: int,
        embedding_dim: int,
        projection_kernel: int,
        latent_norm: str,
        kind: str = "conv",
        causal: bool = False,
    ) -> None:
        """The sizes are `model.*` of the same names, `kind` is `model.encoder`
        (`encoder_args(params.model)`)."""
        super().__init__()
        C, k = channels, projection_kernel
        m = 1 if kind == "frame" else 3  # the kernel of every conv but the strided one
        if kind == "frame":  # the strided conv reads the input itself; the rest per latent
            layers = [conv(input_dim, C, 4, stride=2, causal=causal), nn.ReLU()]
            layers += [nn.Conv1d(C, C, 1), nn.ReLU(), nn.Conv1d(C, C, 1)]
        else:
            layers = [conv(input_dim, C, 3, causal=causal), nn.ReLU()]
            layers += [conv(C, C, 3, causal=causal), nn.ReLU()]
            layers += [conv(C, C, 4, stride=2, causal=causal), nn.ReLU()]
            layers += [conv(C, C, 3, causal=causal), nn.ReLU(), conv(C, C, 3, causal=causal)]
        self.convs = nn.Sequential(*layers)
        self.res = nn.Sequential(*[ResidualBlock(C, m, causal=causal) for _ in range(res_blocks)])
        self.project = nn.Sequential(nn.ReLU(), conv(C, embedding_dim, k, causal=causal))
        self.latent_norm = latent_norm

    def forward(self, x: Tensor) -> Tensor:
        """x: [B, T, D] -> z: [B, T // 2, E]; with `latent_norm: sequence` each channel of z
        standardized over the time of its own sequence."""
        h = self.res(self.convs(x.transpose(1, 2)))
        z = self.project(h).transpose(1, 2)
        if self.latent_norm == "sequence":
            z = standardize_over_time(z)
        return z


LATENT_STD_FLOOR = 1e-5


def standardize_over_time(z: Tensor) -> Tensor:
    """[B, L, E]: each channel of each sequence to mean 0, std 1 over its L steps."""
    mean = z.mean(dim=1, keepdim=True)
    std = z.std(dim=1, keepdim=True, unbiased=False) if z.shape[1] > 1 else torch.ones_like(mean)
    return (z - mean) / std.clamp(min=LATENT_STD_FLOOR)


class Decoder(nn.Module):
    """The mirror: k conv on [codes; speaker], residual blocks, k=4 stride-2 transposed conv
    (20 -> 10 ms), two k convs, output projection; k = `model.decoder_kernel` (3; with 1 an
    output frame sees only the two latents the transposed conv puts next to it)."""

    def __init__(self, cfg: ModelParams, input_dim: int) -> None:
        super().__init__()
        C, k = cfg.channels, cfg.decoder_kernel
        if k % 2 == 0:
            raise ValueError(f"model.decoder_kernel must be odd, not {k}")
        self.inp = nn.Conv1d(cfg.embedding_dim + cfg.speaker_dim, C, k, padding=k // 2)
        self.res = nn.Sequential(*[ResidualBlock(C, k) for _ in range(cfg.res_blocks)])
        self.up = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose1d(C, C, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(C, C, k, padding=k // 2),
            nn.ReLU(),
            nn.Conv1d(C, C, k, padding=k // 2),
            nn.ReLU(),
            nn.Conv1d(C, input_dim, 1),
        )

    def forward(self, q: Tensor, speaker: Tensor) -> Tensor:
        """q: [B, L, E], speaker: [B, S] -> [B, 2 L, D]."""
        s = speaker[:, :, None].expand(-1, -1, q.shape[1])
        h = self.res(self.inp(torch.cat([q.transpose(1, 2), s], dim=1)))
        return self.up(h).transpose(1, 2)


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times -scale backward."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, scale: Tensor | float) -> Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(x: Tensor, scale: Tensor | float) -> Tensor:
    """x unchanged; what flows back through it is multiplied by -scale (gradient reversal)."""
    return _ReverseGradient.apply(x, scale)


class SpeakerAdversary(nn.Module):
    """`model.adversary`: a per-latent speaker classifier (E -> hidden -> speakers) reading the
    latents through a gradient reversal whose scale rises linearly from 0 to `weight` over
    `ramp_steps` training steps (counted in `steps`, kept in the model: a resumed run goes on
    where it stopped). The classifier learns to tell the training speakers apart; the encoder
    gets the opposite gradient, to make that harder."""

    def __init__(self, embedding_dim: int, hidden: int, n_speakers: int, weight: float, ramp: int):
        super().__init__()
        self.weight, self.ramp = weight, ramp
        self.classify = nn.Sequential(
            nn.Linear(embedding_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_speakers)
        )
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def scale(self) -> Tensor:
        """The reversed gradient's scale at this step (a tensor on the model's device: reading
        the step count back would cost a host sync per step on CUDA)."""
        if self.ramp == 0:
            return torch.full((), self.weight, device=self.steps.device)
        return self.weight * (self.steps.float() / self.ramp).clamp(max=1.0)

    def forward(self, z: Tensor) -> Tensor:
        """z [B, L, E] -> speaker logits [B, L, speakers]; a training call counts a step."""
        scale = self.scale()
        if self.training:
            self.steps += 1
        return self.classify(reverse_gradient(z, scale))


def adversary_terms(logits: Tensor, speaker: Tensor) -> dict[str, Tensor]:
    """The adversary's cross-entropy and accuracy over the latents of training speakers
    (id >= 0; a held-out speaker, -1, has no class): empty when there are none."""
    if speaker.device.type == "cpu" and not bool((speaker >= 0).any()):
        return {}  # (on CUDA the all-unknown case costs a sync to detect: a 0 loss instead)
    logits = logits.float()
    target = speaker[:, None].expand(-1, logits.shape[1])  # -1: no class
    known = (target >= 0).float()
    ce = nn.functional.cross_entropy(
        logits.transpose(1, 2), target, ignore_index=-1, reduction="none"
    )
    n = known.sum().clamp(min=1.0)
    hits = (logits.argmax(-1) == target).float() * known
    return {
        "speaker_adversary": (ce * known).sum() / n,
        "speaker_adversary_accuracy": hits.sum() / n,
    }


def rebuild_config(
    cfg: ModelParams, input_dim: int, n_speakers: int, **data: int
) -> dict[str, object]:
    """A model's `config()`: its params and the data sizes its constructor takes."""
    return {
        "model": cfg.model_dump(),
        "data": {"input_dim": input_dim, "n_speakers": n_speakers, **data},
    }


@dataclass
class VQVAEOutput:
    reconstruction: Tensor  # [B, 2 (T // 2), D]; wavenet: logits [B, 256, W]
    latents: Tensor  # [B, T // 2, E], before quantization
    vq: QuantizerOutput
    target: Tensor | None = None  # wavenet: the mu-law classes [B, W] the logits predict
    speaker_logits: Tensor | None = None  # `model.adversary`: [B, T // 2, speakers]
    speaker: Tensor | None = None  # [B] ids, with speaker_logits


class VQVAE(nn.Module):
    def __init__(
        self, cfg: ModelParams, *, input_dim: int, n_speakers: int, output_dim: int | None = None
    ) -> None:
        """`cfg` is `params.model` as validated (its defaults are the only ones); `input_dim`,
        `n_speakers` and `output_dim` (the deconv decoder's frames: `input_dim` unless
        `model.target` is another feature) come from the data."""
        super().__init__()
        self.cfg, self.input_dim, self.n_speakers = cfg, input_dim, n_speakers
        if output_dim is None and cfg.target == "static":
            if input_dim % 3:
                raise ValueError(
                    f"model.target static: {input_dim} input dimensions are not static + delta "
                    "+ delta-delta"
                )
            output_dim = input_dim // 3
        self.output_dim = input_dim if output_dim is None else output_dim
        self.encoder = Encoder(input_dim, **encoder_args(cfg))
        self.quantizer = VectorQuantizer(dim=cfg.embedding_dim, **cfg.quantizer.model_dump())
        self.jitter = TimeJitter(cfg.jitter)
        self.speakers = nn.Embedding(n_speakers, cfg.speaker_dim)
        self.decoder: nn.Module = (
            WaveNet(cfg.wavenet, cond_dim=cfg.embedding_dim, speaker_dim=cfg.speaker_dim)
            if cfg.decoder == "wavenet"
            else Decoder(cfg, self.output_dim)
        )
        a = cfg.adversary
        self.adversary = (
            SpeakerAdversary(cfg.embedding_dim, a.hidden, n_speakers, a.weight, a.ramp_steps)
            if a.weight > 0
            else None
        )

    def config(self) -> dict[str, object]:
        """What rebuilds this model: `VQVAE(ModelParams(**c["model"]), **c["data"])`."""
        extra = {"output_dim": self.output_dim} if self.output_dim != self.input_dim else {}
        return rebuild_config(self.cfg, self.input_dim, self.n_speakers, **extra)

    def speaker_vectors(self, speaker: Tensor) -> Tensor:
        """Embeddings of speaker ids; id -1 (a speaker unseen in training) gets their mean."""
        known = speaker >= 0
        vectors = self.speakers(speaker.clamp(min=0))
        if not bool(known.all()):
            mean = self.speakers.weight.mean(0)
            vectors = torch.where(known[:, None], vectors, mean.expand_as(vectors))
        return vectors

    def wavenet_window(self, n_latents: int) -> tuple[int, int]:
        """The samples [start, stop) of a crop of `n_latents` latents that the WaveNet loss
        covers: `model.wavenet.window_latents` latents in the middle, with the receptive field
        inside the crop. Raises ValueError when the crop is too short for that."""
        w, up = self.cfg.wavenet.window_latents, SAMPLES_PER_LATENT
        first = (n_latents - w) // 2
        history = self.decoder.receptive_field - 1
        if w > n_latents or first * up < history:
            need = 2 * (w + 2 * -(-history // up))
            raise ValueError(
                f"a crop of {n_latents} latents cannot hold a {w}-latent WaveNet window after "
                f"its {history}-sample receptive field: raise train.crop_frames to >= {need} or "
                "lower model.wavenet.window_latents / layers"
            )
        return first * up, (first + w) * up

    def forward(self, x: Tensor, speaker: Tensor, audio: Tensor | None = None) -> VQVAEOutput:
        """x [B, T, D] features, speaker [B] ids; wavenet: audio [B, >= 160 T] int16 samples of
        the same crops (frame i starts at sample 160 i)."""
        z = self.encoder(x)
        with torch.autocast(z.device.type, enabled=False):  # nearest codes in float32, not bf16
            vq = self.quantizer(z.float())
        q, spk = self.jitter(vq.quantized), self.speaker_vectors(speaker)
        adversary = {}
        if self.adversary is not None:
            adversary = {"speaker_logits": self.adversary(z), "speaker": speaker}
        if self.cfg.decoder == "deconv":
            return VQVAEOutput(self.decoder(q, spk), z, vq, **adversary)
        if audio is None:
            raise ValueError("the WaveNet decoder needs the crops' audio")
        n = q.shape[1] * SAMPLES_PER_LATENT
        if audio.shape[1] < n:
            raise ValueError(f"{audio.shape[1]} samples for {q.shape[1]} latents (need {n})")
        classes = mulaw_encode(audio[:, :n].float() / 32768.0)
        start, stop = self.wavenet_window(q.shape[1])
        logits = self.decoder(classes, q, spk, start, stop)
        return VQVAEOutput(logits, z, vq, classes[:, start:stop], **adversary)

    def losses(self, x: Tensor, out: VQVAEOutput) -> dict[str, Tensor]:
        """{"recon": the decoder's loss} (the objective; the quantizer's loss is added apart);
        `x` is what the deconv decoder reconstructs: the input (of which `model.target: static`
        takes the static third), or the `model.target` frames. With `model.adversary`, the
        objective comes first as "recon_adversary", recon + the adversary's cross-entropy
        (whose gradient the encoder gets reversed), then recon and `adversary_terms`."""
        if self.cfg.target == "static":
            x = x[..., : self.output_dim]
        recon = decoder_loss(x, out)
        if out.speaker_logits is None or out.speaker is None:
            return {"recon": recon}
        terms = adversary_terms(out.speaker_logits, out.speaker)
        objective = recon + terms.get("speaker_adversary", 0.0 * out.speaker_logits.sum())
        return {"recon_adversary": objective, "recon": recon, **terms}

    @torch.no_grad()
    def encode(self, x: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """Latents and codes of x: [B, T, D], without decoding."""
        z = self.encoder(x)
        with torch.autocast(z.device.type, enabled=False):
            return z, self.quantizer.nearest(z.float())


def reconstruction_loss(x: Tensor, recon: Tensor) -> Tensor:
    """MSE against the input frames the decoder covers (all but a trailing odd frame)."""
    return torch.nn.functional.mse_loss(recon, x[:, : recon.shape[1]])


def decoder_loss(x: Tensor, out: VQVAEOutput) -> Tensor:
    """The decoder's loss: feature MSE (deconv) or cross-entropy of the mu-law classes in nats
    per sample (wavenet), in float32."""
    if out.target is None:
        return reconstruction_loss(x, out.reconstruction.float())
    return torch.nn.functional.cross_entropy(out.reconstruction.float(), out.target)


def receptive_field(model: nn.Module) -> int:
    """Input frames seen by one latent: 1 + sum (k - 1) * (product of earlier strides)."""
    rf, jump = 1, 1
    for m in [*model.encoder.convs, *model.encoder.res.modules(), *model.encoder.project]:
        if isinstance(m, nn.Conv1d):
            rf += (m.kernel_size[0] - 1) * jump
            jump *= m.stride[0]
    return rf


def summary(model: nn.Module, hop_ms: float = 10.0, win_ms: float = 25.0) -> str:
    """Parameters per module and the encoder's receptive field."""
    lines = [f"{'module':<12}{'parameters':>12}"]
    total = 0
    for name, module in model.named_children():
        n = sum(p.numel() for p in module.parameters())
        total += n
        lines.append(f"{name:<12}{n:>12,}")
    lines.append(f"{'total':<12}{total:>12,}")
    rf, q = receptive_field(model), model.cfg.quantizer
    lines.append(
        f"encoder receptive field: {rf} frames = {(rf - 1) * hop_ms + win_ms:.0f} ms of audio; "
        f"one code per {2 * hop_ms:.0f} ms; codebook {q.codebook_size} x "
        f"{model.cfg.embedding_dim} ({'EMA' if q.kind == 'ema' else 'loss-trained'})"
    )
    if model.cfg.family == "vqvae" and model.cfg.target != "input":
        lines.append(
            f"decoder target: {model.cfg.target} ({model.output_dim} dims per 10 ms frame), "
            f"not the {model.input_dim}-dim input"
        )
    if model.cfg.family in ("vqcpc", "cpc"):
        c = model.cfg.cpc
        name = "VQ-CPC" if model.cfg.family == "vqcpc" else "CPC (units: k-means of the latents)"
        lines.append(
            f"{name}: LSTM context {c.context_dim}, predicts {c.prediction_steps} latents = "
            f"{c.prediction_steps * 2 * hop_ms:.0f} ms ahead against {c.negatives} negatives "
            f"of the same {c.negatives_from} ({c.speakers_per_batch} speakers per batch); "
            "no decoder"
        )
    elif model.cfg.family == "hubert":
        h = model.cfg.hubert
        lines.append(
            f"HuBERT: bidirectional LSTM context {h.context_dim} per direction over the "
            f"{'masked ' if h.mask_at == 'latents' else ''}latents (each latent sees the whole "
            f"crop); predicts {h.labels} k-means classes of the input at masked spans of "
            f"{h.mask_span} latents covering {h.mask_share:.0%} (masked at the {h.mask_at}); "
            "units: k-means of the latents; no decoder"
        )
    elif model.cfg.decoder == "wavenet":
        wn, w = model.decoder, model.cfg.wavenet.window_latents
        lines.append(
            f"WaveNet decoder: {len(wn.dilations)} layers ({wn.cfg.stacks} x dilations 1..."
            f"{wn.dilations[-1]}), {wn.cfg.residual_channels} residual / {wn.cfg.skip_channels} "
            f"skip channels, receptive field {wn.receptive_field} samples = "
            f"{wn.receptive_field / 16:.1f} ms; loss on {w} latent(s) = "
            f"{w * SAMPLES_PER_LATENT} samples per crop"
        )
    if getattr(model, "adversary", None) is not None:
        a = model.cfg.adversary
        lines.append(
            f"speaker adversary: {a.hidden}-unit classifier of {model.n_speakers} speakers on "
            f"the latents, gradient reversed x {a.weight:g} (ramped over {a.ramp_steps} steps)"
        )
    return "\n".join(lines)
