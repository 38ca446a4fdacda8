"""A standalone re-creation, for timing only, of one training step of the reference
implementation, swasun/VQ-VAE-Speech (commit 3c537c1, 2019-07-18), in its "features"
configuration (configurations/vctk_features.yaml with the overrides of
configurations/experiments_vq44-mfcc39.json, "jitter12": 768 hidden channels, K = 44,
jitter 0.12; speaker conditioning as in experiments_vq29-mfcc39.json).

Written from the upstream code, not copied; every layer, shape and per-step op follows it:

- `Residual`, `ResidualStack`: src/modules/residual.py, residual_stack.py. ReLU(inplace) ->
  conv k3 (no bias) -> ReLU -> conv k1 (no bias), plus the skip, then a final ReLU. Upstream
  bugs kept: the stack is `[Residual(...)] * n`, one block whose weights are shared by its two
  layers (so it is counted once); the in-place first ReLU rewrites the block's input, so the
  skip carries relu(x), and in the encoder the stack's outer skip adds relu(x_conv_5).
- `Encoder`: src/models/convolutional_encoder.py. 39 -> C conv k3 p1, ReLU; conv k3 p1, ReLU,
  + skip; conv k4 s2 p2, ReLU (T -> T // 2 + 1); two conv k3 p1, ReLU, + skip; residual stack
  + skip. Channels first, [B, C, T].
- `pre_vq`: nn.Conv1d(C, 64, k3, p1) in src/models/convolutional_vq_vae.py.
- `Quantizer`: src/models/vector_quantizer.py, the non-EMA one (vctk_features.yaml has
  `decay: 0.0`, and ConvolutionalVQVAE picks VectorQuantizerEMA only when decay > 0): codebook
  trained by Adam through the codebook loss, commitment cost 0.25, uniform(-1/K, 1/K) init.
  Upstream bug kept: [B, 64, T] is permuted to [64, T, B] and *that* is viewed as rows of 64,
  so each "vector" mixes channels, steps and utterances (same cost as the right order). Kept
  per step as well: the one-hot built on the CPU and copied to the device, the one-hot matmul,
  the perplexity, and the four `.item()` of its loss dict (host syncs on a GPU).
- `Decoder`: src/models/deconvolutional_decoder.py. Jitter (training only), speaker
  conditioning (concatenates 40 channels), 64 (+40) -> C conv k3 p1 (no activation),
  nearest x2 upsample, residual stack, ConvTranspose k3 p1 + ReLU, ConvTranspose k3 p0 + ReLU,
  ConvTranspose C -> 39 k2 p0; the model then crops the output to the input length.
- `Jitter`: src/modules/jitter.py. A Python loop over the latent steps, two np.random.choice
  per step and one in-place column copy per replaced step. Upstream bug kept: `[True,
  False][choice([1, 0], p=[p, 1 - p])]` replaces a step with probability 1 - p (0.88), not p.
- Speaker conditioning: src/speech_utils/global_conditioning.py. Upstream bug kept: a *new*
  nn.Embedding(n_speakers, 40), normal(0, 0.1), is built on the CPU and moved to the device at
  every forward; it is never registered, so it is not trained (its gradient is still computed
  and thrown away) and not counted in the parameters.
- `reference_step`: ConvolutionalTrainer.iterate (src/experiments/convolutional_trainer.py):
  zero_grad, forward, MSE(reconstruction, target) + vq loss, `.item()` of the reconstruction
  loss and the loss, backward, Adam step, `.item()` of the perplexity.
- `reference_optimizer`: Adam(lr=2e-4, amsgrad=True), as the trainer builds it.

Deliberate departures (none changes the arithmetic of a step):

- Left out, as they cost nothing in the reference's training runs: the `verbose` logging,
  codebook/gradient stats (`record_codebook_stats: False`; `concatenated_quantized` is None in
  training), the eval-only pairwise-distance loops of the quantizer, tqdm, checkpoints,
  DataParallel, and the data loader (unpickling, normalisation); `reference_step` takes an
  already batched x, moved to the model's device (a no-op when it is there already).
- Input and target are the same tensor x (for the features config upstream computes both from
  the same signal with the same MFCC39 settings); the target still gets its own
  permute().contiguous() copy as upstream.
- `x` is [B, T, 39]; upstream clips are 7680 samples, which python_speech_features makes
  47 frames (`input_features_dim: 47`); any T works (48 here gives 25 latents, 47 gives 24).
- Sizes and switches are arguments (C for `num_hiddens` and `residual_channels`, K, the input
  dim, the number of speakers standing in for len(speaker_dic)); `use_kaiming_normal` is False
  upstream, so PyTorch's default init, and weight norm is not used.
- `zero_grad()` uses the current PyTorch default (set_to_none) rather than 2019's zero fill.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

EMBEDDING_DIM = 64
SPEAKER_DIM = 40  # hard-coded in DeconvolutionalDecoder ("FIXME hardcoded")
COMMITMENT_COST = 0.25
LEARNING_RATE = 2e-4
JITTER_PROBABILITY = 0.12
NUM_RESIDUAL_LAYERS = 2


class Residual(nn.Module):
    """x + conv1x1(relu(conv3(relu_(x)))), with the in-place first ReLU of upstream."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.Conv1d(channels, hidden, kernel_size=3, padding=1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv1d(hidden, channels, kernel_size=1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.block(x)  # the block's ReLU_ has rewritten x by the time it is added


class ResidualStack(nn.Module):
    """`layers` applications of one shared Residual block, then a ReLU."""

    def __init__(self, channels: int, hidden: int, layers: int = NUM_RESIDUAL_LAYERS) -> None:
        super().__init__()
        block = Residual(channels, hidden)
        self.layers = nn.ModuleList([block] * layers)  # the same module twice: shared weights

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return F.relu(x)


class Encoder(nn.Module):
    """[B, D, T] -> [B, C, T // 2 + 1]."""

    def __init__(self, input_dim: int, channels: int) -> None:
        super().__init__()
        self.conv_1 = nn.Conv1d(input_dim, channels, kernel_size=3, padding=1)
        self.conv_2 = nn.Conv1d(channels, channels, kernel_size=3, padding=1)
        self.conv_3 = nn.Conv1d(channels, channels, kernel_size=4, stride=2, padding=2)
        self.conv_4 = nn.Conv1d(channels, channels, kernel_size=3, padding=1)
        self.conv_5 = nn.Conv1d(channels, channels, kernel_size=3, padding=1)
        self.residual_stack = ResidualStack(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        x_1 = F.relu(self.conv_1(x))
        x = F.relu(self.conv_2(x_1)) + x_1
        x_3 = F.relu(self.conv_3(x))
        x_4 = F.relu(self.conv_4(x_3)) + x_3
        x_5 = F.relu(self.conv_5(x_4)) + x_4
        return self.residual_stack(x_5) + x_5  # x_5 is relu(x_5) by now (in-place ReLU)


class Quantizer(nn.Module):
    """The non-EMA VectorQuantizer: codebook + commitment loss, straight-through gradient."""

    def __init__(self, codebook_size: int, dim: int = EMBEDDING_DIM) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.dim = dim
        self.embedding = nn.Embedding(codebook_size, dim)
        self.embedding.weight.data.uniform_(-1 / codebook_size, 1 / codebook_size)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor, dict[str, float]]:
        """z [B, 64, T] -> (vq loss, quantized [B, 64, T], perplexity, loss values)."""
        inputs = z.permute(1, 2, 0).contiguous()  # [64, T, B]: upstream's "BCHW -> BHWC"
        shape = inputs.shape
        flat = inputs.view(-1, self.dim)  # rows of 64 consecutive values of [64, T, B]
        weight = self.embedding.weight
        distances = (
            torch.sum(flat**2, dim=1, keepdim=True)
            + torch.sum(weight**2, dim=1)
            - 2 * torch.matmul(flat, weight.t())
        )
        indices = torch.argmin(distances, dim=1).unsqueeze(1)
        # Upstream builds the one-hot on the CPU and copies it to the device every step.
        encodings = torch.zeros(indices.shape[0], self.codebook_size, dtype=torch.float)
        encodings = encodings.to(z.device)
        encodings.scatter_(1, indices, 1)
        quantized = torch.matmul(encodings, weight).view(shape)

        e_latent_loss = torch.mean((quantized.detach() - inputs) ** 2)
        q_latent_loss = torch.mean((quantized - inputs.detach()) ** 2)
        commitment_loss = COMMITMENT_COST * e_latent_loss
        vq_loss = q_latent_loss + commitment_loss

        quantized = inputs + (quantized - inputs).detach()
        avg_probs = torch.mean(encodings, dim=0)
        perplexity = torch.exp(-torch.sum(avg_probs * torch.log(avg_probs + 1e-10)))
        losses = {  # four host syncs per step, as upstream's returned dict
            "e_latent_loss": e_latent_loss.item(),
            "q_latent_loss": q_latent_loss.item(),
            "commitment_loss": commitment_loss.item(),
            "vq_loss": vq_loss.item(),
        }
        return vq_loss, quantized.permute(2, 0, 1).contiguous(), perplexity, losses


def jitter(quantized: Tensor, probability: float) -> Tensor:
    """Upstream's Jitter.forward: replaces each step by a neighbour, in place, in a Python loop
    (with upstream's inverted draw: a step is replaced with probability 1 - `probability`)."""
    original = quantized.detach().clone()
    length = original.size(2)
    for i in range(length):
        replace = [True, False][np.random.choice([1, 0], p=[probability, 1 - probability])]
        if replace:
            if i == 0:
                neighbour = i + 1
            elif i == length - 1:
                neighbour = i - 1
            else:
                neighbour = i + int(np.random.choice([-1, 1], p=[0.5, 0.5]))
            quantized[:, :, i] = original[:, :, neighbour]
    return quantized


def speaker_conditioning(speakers: Tensor, n_speakers: int, x: Tensor) -> Tensor:
    """GlobalConditioning.compute(expand=True): a fresh, untrained embedding every call,
    [B] speaker ids -> [B, 40, T]."""
    table = nn.Embedding(n_speakers, SPEAKER_DIM)
    table.weight.data.normal_(0, 0.1)
    table = table.to(x.device)
    b, _, t = x.size()
    g = table(speakers.view(b, -1).long()).transpose(1, 2)  # [B, 40, 1]
    return g.expand(b, -1, t).contiguous()


class Decoder(nn.Module):
    """[B, 64, T'] -> [B, D, 2 T' + 3] (cropped to the input length by the model)."""

    def __init__(
        self,
        output_dim: int,
        channels: int,
        n_speakers: int,
        use_jitter: bool,
        jitter_probability: float,
        use_speaker_conditioning: bool,
    ) -> None:
        super().__init__()
        self.n_speakers = n_speakers
        self.use_jitter = use_jitter
        self.jitter_probability = jitter_probability
        self.use_speaker_conditioning = use_speaker_conditioning
        cin = EMBEDDING_DIM + (SPEAKER_DIM if use_speaker_conditioning else 0)
        self.conv_1 = nn.Conv1d(cin, channels, kernel_size=3, padding=1)
        self.upsample = nn.Upsample(scale_factor=2)
        self.residual_stack = ResidualStack(channels, channels)
        self.conv_trans_1 = nn.ConvTranspose1d(channels, channels, kernel_size=3, padding=1)
        self.conv_trans_2 = nn.ConvTranspose1d(channels, channels, kernel_size=3, padding=0)
        self.conv_trans_3 = nn.ConvTranspose1d(channels, output_dim, kernel_size=2, padding=0)

    def forward(self, x: Tensor, speakers: Tensor) -> Tensor:
        if self.use_jitter and self.training:
            x = jitter(x, self.jitter_probability)
        if self.use_speaker_conditioning:
            x = torch.cat([x, speaker_conditioning(speakers, self.n_speakers, x)], dim=1)
        x = self.conv_1(x)
        x = self.upsample(x)
        x = self.residual_stack(x)
        x = F.relu(self.conv_trans_1(x))
        x = F.relu(self.conv_trans_2(x))
        return self.conv_trans_3(x)


class ReferenceVQVAE(nn.Module):
    """ConvolutionalVQVAE: encoder, pre-VQ conv, quantizer, decoder, crop."""

    def __init__(
        self,
        channels: int,
        codebook_size: int,
        input_dim: int,
        n_speakers: int,
        use_jitter: bool,
        jitter_probability: float,
        use_speaker_conditioning: bool,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.encoder = Encoder(input_dim, channels)
        self.pre_vq_conv = nn.Conv1d(channels, EMBEDDING_DIM, kernel_size=3, padding=1)
        self.vq = Quantizer(codebook_size)
        self.decoder = Decoder(
            input_dim,
            channels,
            n_speakers,
            use_jitter,
            jitter_probability,
            use_speaker_conditioning,
        )

    def forward(
        self, x: Tensor, speakers: Tensor
    ) -> tuple[Tensor, Tensor, dict[str, float], Tensor]:
        """x [B, T, D] -> (reconstruction [B, D, T], vq loss, loss values, perplexity)."""
        x = x.permute(0, 2, 1).contiguous().float()
        z = self.pre_vq_conv(self.encoder(x))
        vq_loss, quantized, perplexity, losses = self.vq(z)
        out = self.decoder(quantized, speakers)
        n_in, n_out = x.size(2), out.size(2)
        out = out.view(-1, self.input_dim, n_out)[:, :, : -(n_out - n_in)]
        return out, vq_loss, losses, perplexity


def reference_model(
    channels: int = 768,
    codebook_size: int = 44,
    input_dim: int = 39,
    n_speakers: int = 100,
    *,
    use_jitter: bool = True,
    jitter_probability: float = JITTER_PROBABILITY,
    use_speaker_conditioning: bool = True,
) -> nn.Module:
    """The reference's ConvolutionalVQVAE (features config: 768 channels, K = 44 by default)."""
    return ReferenceVQVAE(
        channels,
        codebook_size,
        input_dim,
        n_speakers,
        use_jitter,
        jitter_probability,
        use_speaker_conditioning,
    )


def reference_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """Adam(lr 2e-4, amsgrad), as ConvolutionalTrainer builds it."""
    return torch.optim.Adam(model.parameters(), lr=LEARNING_RATE, amsgrad=True)


def reference_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, x: Tensor, speakers: Tensor
) -> float:
    """One ConvolutionalTrainer.iterate on x [B, T, D] (input and target) and speaker ids [B];
    returns the loss (reconstruction MSE + vq loss)."""
    model.train()
    device = next(model.parameters()).device
    source = x.to(device)
    speaker_id = speakers.to(device)
    target = x.to(device).permute(0, 2, 1).contiguous().float()

    optimizer.zero_grad()
    reconstructed, vq_loss, losses, perplexity = model(source, speaker_id)
    reconstruction_loss = F.mse_loss(reconstructed, target)
    loss = vq_loss + reconstruction_loss
    losses["reconstruction_loss"] = reconstruction_loss.item()
    losses["loss"] = loss.item()
    loss.backward()
    optimizer.step()
    perplexity.item()
    return losses["loss"]


def _smoke() -> None:
    import time

    torch.manual_seed(0)
    np.random.seed(0)
    for channels in (128, 768):
        model = reference_model(channels=channels)
        optimizer = reference_optimizer(model)
        n = sum(p.numel() for p in model.parameters())
        for batch in (2, 32):
            x = torch.randn(batch, 48, 39)
            speakers = torch.randint(0, 100, (batch,))
            reference_step(model, optimizer, x, speakers)  # warm-up
            start = time.perf_counter()
            loss = reference_step(model, optimizer, x, speakers)
            took = time.perf_counter() - start
            print(f"C={channels} params={n:,} B={batch}: loss {loss:.3f}, {took * 1e3:.0f} ms")


if __name__ == "__main__":
    _smoke()
