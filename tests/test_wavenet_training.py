"""The VQ-VAE with `decoder: wavenet` through the same training loop: loss on the right samples,
determinism, exact resume, clear errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from vqspeech.model.checkpoint import load_model, save_model
from vqspeech.model.vqvae import decoder_loss
from vqspeech.model.wavenet import mulaw_encode
from vqspeech.train.crops import SplitData
from vqspeech.train.loop import TrainingError, train

from .conftest import DEFAULTS, changed, model_params, vqvae

WAVENET = {"residual_channels": 8, "skip_channels": 8, "layers_per_stack": 3}
MODEL = model_params(
    channels=16,
    res_blocks=1,
    embedding_dim=8,
    speaker_dim=4,
    decoder="wavenet",
    quantizer={"kmeans_batches": 2, "codebook_size": 8, "dead_threshold": 0.0},
    wavenet=WAVENET,
)
CFG = changed(DEFAULTS.train, epochs=3, batch_size=4, crop_frames=8, val_crops=8, lr=3e-3)


def toy(n_utts: int = 12, frames: int = 60, seed: int = 0) -> SplitData:
    """Features of noise; audio a 250 Hz tone (predictable from the last samples)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(frames // 2, frames, n_utts)
    x = rng.standard_normal((int(lengths.sum()), 6)).astype(np.float32)
    samples = 160 * (lengths - 1) + 400
    t = np.arange(int(samples.sum())) / 16000
    audio = (12000 * np.sin(2 * np.pi * 250 * t)).astype(np.int16)
    data = SplitData(
        x,
        np.concatenate([[0], np.cumsum(lengths)]),
        np.arange(n_utts) % 2,
        [f"u{i}" for i in range(n_utts)],
    )
    data.audio, data.audio_offsets = audio, np.concatenate([[0], np.cumsum(samples)])
    return data


def test_the_loss_covers_the_middle_latents_samples():
    torch.manual_seed(0)
    model = vqvae(MODEL, 6, 2).eval()
    x, spk = torch.randn(2, 12, 6), torch.tensor([0, 1])
    audio = torch.randint(-20000, 20000, (2, 12 * 160), dtype=torch.int16)
    out = model(x, spk, audio)
    assert model.wavenet_window(6) == (2 * 320, 3 * 320)  # latent 2 of 0..5
    assert out.reconstruction.shape == (2, 256, 320)
    assert torch.equal(out.target, mulaw_encode(audio[:, 640:960].float() / 32768))
    loss = decoder_loss(x, out)
    assert math.isfinite(float(loss.detach())) and float(loss.detach()) > 0
    with pytest.raises(ValueError, match="needs the crops' audio"):
        model(x, spk)


def test_a_crop_too_short_for_the_receptive_field_is_refused():
    big = changed(MODEL, wavenet={**WAVENET, "layers_per_stack": 10})
    with pytest.raises(ValueError, match=r"raise train\.crop_frames to >= 18"):
        vqvae(big, 6, 2).wavenet_window(4)  # 1023 samples back
    with pytest.raises(TrainingError, match=r"model\.decoder is 'wavenet'.*crop_frames"):
        train(big, CFG, toy(), None, checkpoint_dir=Path("/nonexistent"), data_fingerprint="fp")
    no_audio = toy()
    no_audio.audio = None
    with pytest.raises(TrainingError, match="train split was loaded without audio"):
        train(
            MODEL, CFG, no_audio, None, checkpoint_dir=Path("/nonexistent"), data_fingerprint="fp"
        )


class Interrupt(Exception):
    pass


def test_training_learns_is_deterministic_and_resumes_exactly(tmp_path: Path):
    data, val = toy(), toy(seed=1)
    whole = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "whole", data_fingerprint="fp")
    again = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "again", data_fingerprint="fp")
    state = {k: v.clone() for k, v in whole.model.state_dict().items()}
    assert all(torch.equal(state[k], v) for k, v in again.model.state_dict().items())
    # a tone is learnable: cross-entropy falls well below chance (ln 256 = 5.55 nats)
    assert whole.last["val_recon"] < math.log(256) - 1.0, whole.last

    def stop(step: int, model) -> None:
        if step == whole.steps // 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(
            MODEL,
            CFG,
            data,
            val,
            checkpoint_dir=tmp_path / "cut",
            data_fingerprint="fp",
            on_step=stop,
        )
    resumed = train(MODEL, CFG, data, val, checkpoint_dir=tmp_path / "cut", data_fingerprint="fp")
    assert resumed.resumed_from is not None
    assert all(torch.equal(state[k], v) for k, v in resumed.model.state_dict().items())
    save_model(tmp_path / "model.pt", whole.model, {})
    loaded, _ = load_model(tmp_path / "model.pt", expect=MODEL)
    assert loaded.cfg.decoder == "wavenet"
    z, vq = loaded.encode(torch.randn(1, 8, 6))  # align and evaluate only need the encoder
    assert z.shape == (1, 4, 8) and vq.codes.shape == (1, 4)


@pytest.mark.parametrize("decoder", ["deconv", "wavenet"])
def test_every_parameter_gets_a_gradient(decoder: str):
    """An unused parameter is dead weight and makes DDP fail (found: the last WaveNet layer's
    residual 1x1, whose output nothing read)."""
    torch.manual_seed(0)
    cfg = changed(MODEL, decoder=decoder, quantizer={"kind": "loss"})
    model = vqvae(cfg, 6, 2).train()
    x, spk = torch.randn(2, 12, 6), torch.tensor([0, 1])
    audio = torch.randint(-20000, 20000, (2, 12 * 160), dtype=torch.int16)
    out = model(x, spk, audio)
    (decoder_loss(x, out) + out.vq.loss).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []
