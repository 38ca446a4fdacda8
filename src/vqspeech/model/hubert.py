"""Masked prediction of clustered features (HuBERT, Hsu et al. 2021, its first iteration),
`model.family: hubert`: the VQ-VAE's encoder and a bidirectional LSTM context learn to predict,
at masked positions, the k-means class of the input's own 20 ms frames (`model.hubert.labels`
classes of the feature pairs that the k-means baseline clusters, MFCC at the defaults, fitted
on train crops when training starts). The units are k-means of the trained latents, as for
`family: cpc` (`fits_units`: the trainer sets the quantizer's codebook to those centres when
training ends).

A latent is `project(context(encoder(x)))` [B, L, E]; `head` maps it to the label classes.
In training, spans of `model.hubert.mask_span` latents cover about `mask_share` of the
positions (`span_mask`, as fairseq draws HuBERT's): at `mask_at: latents` (HuBERT's
choice) the encoder's outputs there are replaced by a learned vector before the context; at
`mask_at: input` the input's two frames of each masked latent are replaced by a learned frame
before the encoder. The loss is the cross-entropy at masked positions only (HuBERT's alpha = 1).
Encoding (eval) masks nothing.

Departures from HuBERT: an LSTM context instead of a transformer, the project's conv encoder on
its features instead of a waveform CNN, a single iteration (the labels are k-means of MFCC, not
of an earlier model's features), and the prediction is a linear head over the latent, not a
cosine similarity against learned class embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqspeech.model.quantizer import QuantizerOutput, VectorQuantizer, kmeans
from vqspeech.model.vqvae import Encoder, encoder_args, rebuild_config
from vqspeech.params import ModelParams


@dataclass
class HubertOutput:
    latents: Tensor  # [B, L, E]
    logits: Tensor  # [B, L, labels]
    mask: Tensor  # [B, L] bool: the positions the loss covers
    vq: None = None  # no quantizer in training


def paired(x: Tensor) -> Tensor:
    """[B, T, D] -> [B, T // 2, D]: frames 2l and 2l + 1 averaged, the vectors the k-means
    baseline clusters (`evaluate.heldout.pair_frames`), one per latent."""
    n = x.shape[1] // 2
    return x[:, : 2 * n].reshape(x.shape[0], n, 2, -1).mean(dim=2)


def span_mask(
    batch: int, length: int, share: float, span: int, generator: torch.Generator | None = None
) -> Tensor:
    """[batch, length] bool: round(share x length / span) spans of `span` positions per row (at
    least one), their starts uniform over [0, length - span] and drawn independently (spans may
    overlap, so a little less than `share` is masked), as fairseq's `compute_mask_indices`
    reads its mask_prob."""
    if not 1 <= span <= length:
        raise ValueError(f"model.hubert.mask_span ({span}) must be 1..{length}, the crop's latents")
    spans = max(1, round(share * length / span))
    starts = torch.randint(0, length - span + 1, (batch, spans), generator=generator)
    covered = (starts[..., None] + torch.arange(span)).reshape(batch, -1)
    mask = torch.zeros(batch, length, dtype=torch.bool)
    return mask.scatter_(1, covered, True)


class Hubert(nn.Module):
    fits_units = True  # units: k-means of the latents after training

    def __init__(self, cfg: ModelParams, *, input_dim: int, n_speakers: int) -> None:
        """The same signature as `VQVAE` (`n_speakers` is kept in the config, not used)."""
        super().__init__()
        self.cfg, self.input_dim, self.n_speakers = cfg, input_dim, n_speakers
        E, h = cfg.embedding_dim, cfg.hubert
        self.encoder = Encoder(input_dim, **encoder_args(cfg))
        self.mask_embedding = nn.Parameter(torch.zeros(E if h.mask_at == "latents" else input_dim))
        self.context = nn.LSTM(E, h.context_dim, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * h.context_dim, E)
        self.head = nn.Linear(E, h.labels)
        # the label classes' centres, in the paired input's space: fitted once (`fit_labels`)
        self.register_buffer("label_centres", torch.zeros(h.labels, input_dim))
        self.quantizer = VectorQuantizer(dim=E, **cfg.quantizer.model_dump())
        self.quantizer.requires_grad_(False)  # fitted after training, never trained

    def config(self) -> dict[str, object]:
        """What rebuilds this model: `build(ModelParams(**c["model"]), **c["data"])`."""
        return rebuild_config(self.cfg, self.input_dim, self.n_speakers)

    @torch.no_grad()
    def fit_labels(self, x: Tensor, generator: torch.Generator | None = None) -> int:
        """label_centres <- k-means (`model.hubert.labels` classes) of the paired frames of
        crops x [N, T, D]; returns how many vectors it clustered. ValueError when they are fewer
        than the classes."""
        vectors = paired(x.float()).reshape(-1, x.shape[-1])
        k = self.cfg.hubert.labels
        if len(vectors) < k:
            raise ValueError(
                f"model.hubert.labels is {k} but the train crops give {len(vectors)} latents' "
                "frames to cluster: lower it (or raise model.quantizer.kmeans_batches)"
            )
        centres = kmeans(vectors.cpu(), k, generator=generator)
        self.label_centres.copy_(centres.to(self.label_centres.device))
        return len(vectors)

    def label(self, x: Tensor) -> Tensor:
        """[B, T, D] -> [B, T // 2]: the class of each latent's paired frames."""
        p = paired(x.float())
        return torch.cdist(p, self.label_centres.expand(len(p), -1, -1)).argmin(dim=-1)

    def _latents(self, z: Tensor) -> Tensor:
        with torch.autocast(z.device.type, enabled=False):  # cuDNN's LSTM in float32
            context, _ = self.context(z.float())
            return self.project(context)

    def latents(self, x: Tensor) -> Tensor:
        """[B, T, D] -> [B, T // 2, E], nothing masked: what the units cluster."""
        return self._latents(self.encoder(x))

    def forward(self, x: Tensor, speaker: Tensor, audio: Tensor | None = None) -> HubertOutput:
        """x [B, T, D] features; `speaker` and `audio` are not used (the trainer's signature)."""
        h = self.cfg.hubert
        B, L = x.shape[0], x.shape[1] // 2
        # in validation too (its RNG seeded by the caller): the loss is only defined masked
        mask = span_mask(B, L, h.mask_share, h.mask_span).to(x.device)
        if h.mask_at == "input":
            frames = mask.repeat_interleave(2, dim=1)
            frames = F.pad(frames, (0, x.shape[1] - frames.shape[1]))
            x = torch.where(frames[..., None], self.mask_embedding.to(x.dtype), x)
            z = self.encoder(x)
        else:
            z = self.encoder(x)
            z = torch.where(mask[..., None], self.mask_embedding.to(z.dtype), z)
        latents = self._latents(z)
        with torch.autocast(latents.device.type, enabled=False):
            logits = self.head(latents.float())
        return HubertOutput(latents, logits, mask)

    def losses(self, x: Tensor, out: HubertOutput) -> dict[str, Tensor]:
        """{"hubert": cross-entropy at masked positions of the classes of x's frames (the
        objective), "hubert_accuracy": the share of them predicted right}. x is the input, or
        with views (`train.views`) the original frames of the rendition the model read."""
        logits, labels = out.logits.float(), self.label(x)
        mask = out.mask.float()  # a masked mean: no boolean indexing (a host sync on CUDA)
        ce = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
        hits = (logits.argmax(dim=-1) == labels).float()
        n = mask.sum().clamp(min=1.0)
        return {"hubert": (ce * mask).sum() / n, "hubert_accuracy": (hits * mask).sum() / n}

    @torch.no_grad()
    def encode(self, x: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """Latents and codes of x: [B, T, D], nothing masked."""
        z = self.latents(x)
        return z, self.quantizer.nearest(z.float())
