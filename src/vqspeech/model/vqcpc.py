"""VQ-CPC (van Niekerk, Nortje and Kamper 2020), `model.family: vqcpc`: the VQ-VAE's encoder
and quantizer trained by contrastive prediction of future codes instead of reconstruction; and
CPC (van den Oord et al. 2018), `model.family: cpc`: the same objective over the continuous
latents, whose units are k-means of its latents on the train split, as the ZeroSpeech 2021
baseline clusters its CPC features (`fits_units`: the trainer sets the quantizer's codebook to
those centres when training ends; the quantizer takes no part in training).

The encoder is the VQ-VAE's, left-padded (`model.cpc.causal`): latent t sees no input after its
own 20 ms. Centred, as in the VQ-VAE, it sees 12 frames (6 latents) ahead, so the context at t
would hold much of the input of the targets it is asked to predict and InfoNCE could be won by
matching shared input rather than by prediction. An LSTM reads the quantized latents q [B, L, E]
into a context c [B, L, H];
for each of K = `model.cpc.prediction_steps` steps ahead a linear map predicts q[t + k] from
c[t], scored by the dot product / sqrt(E) against the true q[t + k] and N = `model.cpc.negatives`
negatives: latents of crops *of the same speaker* in the batch, at other times, so speaker
identity cannot tell the positive from a negative (`model.cpc.negatives_from: utterance`: at
other times of the positive's own crop, so neither can the utterance's channel). The loss is the
mean over k of the
cross-entropy of picking the positive (InfoNCE); targets are the straight-through quantized
latents, so the encoder learns through them too.

As in the published model (github.com/bshall/VectorQuantizedCPC, model.py `CPCLoss`): batches of
S speakers x B / S crops (`model.cpc.speakers_per_batch`), 17 negatives, 6 steps of 20 ms,
negative crops drawn with replacement among the speaker's crops (its own included), negative
times among the other positions. Departures: the encoder is this project's conv encoder (the
VQ-VAE's, so the objective is the only difference between the families) on its features, not the
published LayerNorm MLP on log-mel; the LSTM is 128 wide (256 there); and a held-out speaker
(id -1, as every val speaker) takes its negatives from its own crop only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqspeech.model.quantizer import QuantizerOutput, VectorQuantizer
from vqspeech.model.vqvae import Encoder, encoder_args, rebuild_config
from vqspeech.params import ModelParams


@dataclass
class VQCPCOutput:
    latents: Tensor  # [B, L, E], before quantization
    vq: QuantizerOutput | None  # None for `family: cpc` (no quantizer in training)
    context: Tensor  # [B, L, H]
    predictions: Tensor  # [B, L - K, K, E]: of q[t + k] from context[t], k = 1..K
    speaker: Tensor  # [B] ids, -1 for a speaker unseen in training


def same_speaker_negatives(
    speaker: Tensor, n: int, length: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Indices of `n` negatives for every (crop b, position t < length): crops [B, n, length]
    drawn uniformly with replacement among the crops of b's speaker (b's own crop only when its
    speaker is unseen, id < 0), and positions [B, n, length], uniform over the positions other
    than t."""
    B, device = len(speaker), speaker.device
    same = (speaker[:, None] == speaker[None, :]) & (speaker[:, None] >= 0)
    same |= torch.eye(B, dtype=torch.bool, device=device)
    crops = torch.multinomial(same.float(), n * length, replacement=True, generator=generator)
    shift = torch.randint(1, length, (B, n, length), device=device, generator=generator)
    times = (torch.arange(length, device=device) + shift) % length
    return crops.view(B, n, length), times


def info_nce(
    predictions: Tensor, targets: Tensor, crops: Tensor, times: Tensor
) -> tuple[Tensor, Tensor]:
    """predictions, targets [B, T, E] (prediction of target [b, t] at [b, t]); negatives target
    [crops[b, j, t], times[b, j, t]]. Returns (cross-entropy of the positive among the n + 1,
    accuracy), both means over every (b, t). Accuracy counts the positive scored strictly above
    every negative: a negative with the positive's own code scores the same, and counts as a miss
    (argmax would break the tie for the positive, listed first)."""
    B, T, E = targets.shape
    # every prediction against every target in one matmul, then the n + 1 scores picked from it
    scores = predictions.reshape(B * T, E) @ targets.reshape(B * T, E).T / math.sqrt(E)
    rows = torch.arange(B * T, device=scores.device).view(B, 1, T)
    negative = scores[rows, crops * T + times]  # [B, n, T]
    positive = scores.diagonal().view(B, 1, T)
    logits = torch.cat([positive, negative], dim=1)  # positive first
    labels = torch.zeros(B, T, dtype=torch.long, device=logits.device)
    loss = F.cross_entropy(logits, labels)
    best_negative = logits[:, 1:].amax(dim=1)
    return loss, (logits[:, 0] > best_negative).float().mean()


def tie_rate(codes: Tensor, crops: Tensor, times: Tensor) -> Tensor:
    """The share of negatives that carry their positive's code: codes [B, T] of the targets,
    negatives (crops, times) [B, n, T] as `info_nce` takes them. Such a negative is the
    positive's own vector, scored the same: InfoNCE over quantized targets punishes a code that
    stays constant over a phone by this share of its negatives."""
    T = codes.shape[1]
    negative = codes.reshape(-1)[crops * T + times]  # [B, n, T]
    return (negative == codes[:, None, :]).float().mean()


class VQCPC(nn.Module):
    def __init__(self, cfg: ModelParams, *, input_dim: int, n_speakers: int) -> None:
        """The same signature as `VQVAE` (`n_speakers` is kept in the config, not used);
        `cfg.family` vqcpc (quantized context and targets) or cpc (continuous)."""
        super().__init__()
        self.cfg, self.input_dim, self.n_speakers = cfg, input_dim, n_speakers
        self.fits_units = cfg.family == "cpc"  # units: k-means of the latents after training
        E, c = cfg.embedding_dim, cfg.cpc
        self.encoder = Encoder(input_dim, **encoder_args(cfg), causal=c.causal)
        self.quantizer = VectorQuantizer(dim=E, **cfg.quantizer.model_dump())
        self.context = nn.LSTM(E, c.context_dim, batch_first=True)
        self.predictors = nn.Linear(c.context_dim, c.prediction_steps * E)  # one map per step
        if self.fits_units:  # the codebook is fitted after training, never trained (DDP would
            self.quantizer.requires_grad_(False)  # find a parameter without a gradient)

    def config(self) -> dict[str, object]:
        """What rebuilds this model: `build(ModelParams(**c["model"]), **c["data"])`."""
        return rebuild_config(self.cfg, self.input_dim, self.n_speakers)

    def forward(self, x: Tensor, speaker: Tensor, audio: Tensor | None = None) -> VQCPCOutput:
        """x [B, T, D] features, speaker [B] ids (negatives come from the same id)."""
        z = self.encoder(x)
        vq = None
        with torch.autocast(z.device.type, enabled=False):
            if not self.fits_units:
                vq = self.quantizer(z.float())
            sequence = z.float() if vq is None else vq.quantized
        with torch.autocast(z.device.type, enabled=False):  # autocast would run cuDNN's LSTM in
            context, _ = self.context(sequence)  # fp16 whatever its dtype: float32 here
        K, (B, L, E) = self.cfg.cpc.prediction_steps, sequence.shape
        if L - K < 2:
            raise ValueError(f"{L} latents per crop cannot predict {K} steps ahead")
        # in forward (not in `losses`), so DistributedDataParallel sees every parameter used;
        # in float32 under bf16 autocast too, as the scores (ties would count as misses)
        with torch.autocast(z.device.type, enabled=False):
            predictions = self.predictors(context[:, : L - K].float()).view(B, L - K, K, E)
        return VQCPCOutput(z, vq, context, predictions, speaker)

    def losses(self, x: Tensor, out: VQCPCOutput) -> dict[str, Tensor]:
        """{"cpc": InfoNCE averaged over the steps ahead (the objective), "cpc_accuracy",
        and for VQ-CPC "cpc_tie_rate" (`tie_rate`, averaged over the steps)}."""
        q = (out.latents if out.vq is None else out.vq.quantized).float()
        predictions = out.predictions.float()
        length, K = predictions.shape[1], predictions.shape[2]
        # negatives from the positive's own crop: every crop drawn as a speaker of its own
        own = torch.full_like(out.speaker, -1)
        speaker = out.speaker if self.cfg.cpc.negatives_from == "speaker" else own
        losses, accuracies, ties = [], [], []
        with torch.autocast(q.device.type, enabled=False):  # the scores in float32, always
            for k in range(1, K + 1):
                crops, times = same_speaker_negatives(speaker, self.cfg.cpc.negatives, length)
                loss, acc = info_nce(predictions[:, :, k - 1], q[:, k : k + length], crops, times)
                losses.append(loss)
                accuracies.append(acc)
                if out.vq is not None:
                    ties.append(tie_rate(out.vq.codes[:, k : k + length], crops, times))
        terms = {"cpc": torch.stack(losses).mean(), "cpc_accuracy": torch.stack(accuracies).mean()}
        if ties:
            terms["cpc_tie_rate"] = torch.stack(ties).mean()
        return terms

    @torch.no_grad()
    def encode(self, x: Tensor) -> tuple[Tensor, QuantizerOutput]:
        """Latents and codes of x: [B, T, D]."""
        z = self.encoder(x)
        with torch.autocast(z.device.type, enabled=False):
            return z, self.quantizer.nearest(z.float())
