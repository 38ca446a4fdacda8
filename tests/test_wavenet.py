"""WaveNet groundwork: mu-law round trip, causality, cached generation = uncached generation."""

from __future__ import annotations

import pytest
import torch

from vqspeech.model.wavenet import WaveNet, mulaw_decode, mulaw_encode

from .conftest import DEFAULTS, changed

TINY = changed(
    DEFAULTS.model.wavenet, residual_channels=8, skip_channels=8, layers_per_stack=3, stacks=2
)


def tiny() -> WaveNet:
    return WaveNet(TINY, cond_dim=4, speaker_dim=3, upsample=5)


def test_mulaw_decode_then_encode_is_the_identity_on_every_class():
    q = torch.arange(256)
    assert torch.equal(mulaw_encode(mulaw_decode(q)), q)
    assert mulaw_encode(torch.tensor([-1.0, 0.0, 1.0])).tolist() == [0, 128, 255]
    x = torch.linspace(-1, 1, 10001)
    err = (mulaw_decode(mulaw_encode(x)) - x).abs()
    assert float(err.max()) < 0.033 and float(err[4900:5101].max()) < 1e-3  # |x| <= 0.02: fine


def test_receptive_field_and_causality():
    torch.manual_seed(0)
    assert tiny().receptive_field == 2 * (1 + 2 + 4) + 1
    net = tiny().double().eval()
    latents, spk = torch.randn(1, 4, 4, dtype=torch.float64), torch.randn(1, 3, dtype=torch.float64)
    audio = torch.randint(0, 256, (1, 20))
    logits = net(audio, latents, spk)
    changed = audio.clone()
    changed[0, 12] = (changed[0, 12] + 7) % 256
    after = net(changed, latents, spk)
    assert torch.equal(logits[..., :13], after[..., :13])  # position t sees samples < t only
    assert not torch.equal(logits[..., 13], after[..., 13])


def test_cached_generation_gives_the_samples_of_full_reruns():
    torch.manual_seed(0)
    net = tiny().double().eval()
    latents, spk = torch.randn(2, 3, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    fast = net.generate(latents, spk, torch.Generator().manual_seed(5), cached=True)
    slow = net.generate(latents, spk, torch.Generator().manual_seed(5), cached=False)
    assert fast.shape == (2, 15) and torch.equal(fast, slow)
    other = net.generate(latents, spk, torch.Generator().manual_seed(6), cached=True)
    assert not torch.equal(fast, other)


def test_a_window_gives_the_logits_of_the_full_pass():
    torch.manual_seed(0)
    net = tiny().double().eval()
    latents, spk = torch.randn(2, 6, 4, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    audio = torch.randint(0, 256, (2, 30))
    full = net(audio, latents, spk)
    for start, stop in [(0, 30), (3, 9), (17, 30), (16, 17), (29, 30)]:  # receptive field 15
        window = net(audio, latents, spk, start, stop)
        assert window.shape == (2, 256, stop - start)
        torch.testing.assert_close(window, full[:, :, start:stop], rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="outside"):
        net(audio, latents, spk, 10, 31)


def test_latent_l_conditions_exactly_its_samples_and_their_neighbours():
    """Sample t is conditioned on latent t // upsample (k=3: and its neighbours), so changing
    latent 3 changes the logits of samples [upsample * 2, upsample * 5 + reach) and no others,
    where reach = the dilations of every layer after the first (conditioning enters each layer at
    its own position; the first layer's input is the audio)."""
    torch.manual_seed(0)
    net = tiny().double().eval()
    latents, spk = torch.randn(1, 8, 4, dtype=torch.float64), torch.randn(1, 3, dtype=torch.float64)
    audio = torch.randint(0, 256, (1, 40))
    changed = latents.clone()
    changed[0, 3] += 1.0
    differs = (net(audio, latents, spk) - net(audio, changed, spk)).abs().amax(dim=1)[0] > 0
    reach = sum(net.dilations[1:])
    assert torch.nonzero(differs)[:, 0].tolist() == list(range(10, 25 + reach))
