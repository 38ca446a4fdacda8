"""The VQ-VAE's parts against known answers, including each bug of the reference implementation."""

from __future__ import annotations

import pytest
import torch

from vqspeech.model.jitter import TimeJitter, jitter_indices
from vqspeech.model.quantizer import VectorQuantizer, kmeans
from vqspeech.model.vqvae import receptive_field, summary

from .conftest import DEFAULTS, model_params, vqvae


def quantizer(dim: int, **kw: object) -> VectorQuantizer:
    """A VectorQuantizer with `kw` (known-answer values such as ema_decay=0 allowed), the rest
    at params' defaults."""
    return VectorQuantizer(dim=dim, **{**DEFAULTS.model.quantizer.model_dump(), **kw})


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("ema", [False, True])
def test_each_time_step_gets_its_nearest_code(batch: int, ema: bool):
    """One vector per (item, time step): z built from known codes plus small noise maps back."""
    torch.manual_seed(0)
    vq = quantizer(codebook_size=10, dim=4, kind="ema" if ema else "loss").eval()
    codebook = torch.randn(10, 4) * 5
    gaps = torch.cdist(codebook, codebook) + torch.eye(10) * 1e9
    assert gaps.min() > 1.0  # well separated: 0.01 noise cannot change the nearest code
    vq.set_codebook(codebook)
    truth = torch.randint(0, 10, (batch, 13))
    z = codebook[truth] + 0.01 * torch.randn(batch, 13, 4)
    out = vq(z)
    assert out.codes.shape == (batch, 13)
    assert torch.equal(out.codes, truth)
    brute = torch.stack([torch.cdist(z[b], codebook).argmin(1) for b in range(batch)])
    assert torch.equal(out.codes, brute)
    torch.testing.assert_close(out.quantized, codebook[truth])


def test_straight_through_gradient_and_losses():
    vq = quantizer(codebook_size=3, dim=2, kind="loss", beta=0.25)
    vq.set_codebook(torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]))
    z = torch.tensor([[[0.1, -0.1], [0.9, 1.3]]], requires_grad=True)
    out = vq(z)
    assert out.codes.tolist() == [[0, 1]]
    sq = ((z.detach() - torch.tensor([[0.0, 0.0], [1.0, 1.0]])) ** 2).mean()
    torch.testing.assert_close(out.commitment, 0.25 * sq)
    torch.testing.assert_close(out.codebook_loss, sq)
    out.quantized.sum().backward()
    torch.testing.assert_close(z.grad, torch.ones_like(z))  # identity through the quantizer
    assert vq.codebook.grad is None  # the codebook learns from codebook_loss only


def test_ema_moves_codes_to_the_mean_of_their_vectors():
    vq = quantizer(codebook_size=2, dim=2, kind="ema", ema_decay=0.0)
    vq.set_codebook(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    vq.train()
    z = torch.tensor([[[1.0, 1.0], [3.0, 1.0], [9.0, 11.0]]])
    vq(z)
    # decay 0: each code becomes the mean of its assigned vectors (up to the Laplace smoothing)
    torch.testing.assert_close(
        vq.codebook, torch.tensor([[2.0, 1.0], [9.0, 11.0]]), atol=1e-4, rtol=0
    )


def test_perplexity_and_codes_used():
    vq = quantizer(codebook_size=4, dim=1, kind="loss").eval()
    vq.set_codebook(torch.tensor([[0.0], [1.0], [2.0], [3.0]]))
    out = vq(torch.tensor([[[0.0], [1.0], [2.0], [3.0]]]))
    assert out.codes_used.item() == 4
    assert out.perplexity.item() == pytest.approx(4.0, rel=1e-4)
    out = vq(torch.zeros(1, 5, 1))
    assert out.codes_used.item() == 1 and out.perplexity.item() == pytest.approx(1.0, rel=1e-4)


def test_dead_codes_are_restarted_on_batch_vectors():
    torch.manual_seed(0)
    vq = quantizer(codebook_size=4, dim=2, kind="ema", ema_decay=0.5, dead_threshold=0.3)
    vq.set_codebook(torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 200.0], [300.0, 300.0]]))
    vq.train()
    z = torch.randn(1, 50, 2) * 0.1 + 5
    for _ in range(3):
        vq(z)
    # codes 1-3 were never used: after their usage decayed below the threshold they moved to data
    assert (vq.codebook[1:] - 5).abs().max() < 1.0


def test_kmeans_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(100, 2, generator=g) for c in centres])
    found = kmeans(x, 3, generator=torch.Generator().manual_seed(1))
    order = torch.cdist(centres, found).argmin(1)
    torch.testing.assert_close(found[order], centres, atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="at least 5 vectors"):
        kmeans(x[:4], 5)


def test_jitter_replaces_about_p_of_the_latents_not_1_minus_p():
    torch.manual_seed(0)
    idx = jitter_indices(400, 250, 0.12)
    inner = idx[:, 1:-1] - torch.arange(1, 249)
    rate = (inner != 0).float().mean().item()
    assert rate == pytest.approx(0.12, abs=0.005)
    assert (inner == -1).float().mean().item() == pytest.approx(0.06, abs=0.004)
    assert (inner == 1).float().mean().item() == pytest.approx(0.06, abs=0.004)
    assert set(inner.unique().tolist()) == {-1, 0, 1}
    assert idx.min() == 0 and idx.max() == 249


def test_jitter_is_off_in_eval_and_per_item():
    x = torch.arange(2 * 100, dtype=torch.float).reshape(2, 100, 1).repeat(1, 1, 3)
    j = TimeJitter(0.5).eval()
    assert torch.equal(j(x), x)
    j.train()
    torch.manual_seed(1)
    y = j(x)
    assert not torch.equal(y[0, :, 0] - x[0, :, 0], y[1, :, 0] - x[1, :, 0] - 0)  # independent
    assert torch.equal(y[..., 0], y[..., 2])  # whole vectors move, not single channels


def test_model_shapes_rates_and_receptive_field():
    m = vqvae(model_params(channels=32, quantizer={"codebook_size": 16}), n_speakers=3)
    for T in (48, 49):
        out = m(torch.randn(2, T, 39), torch.tensor([0, 2]))
        assert out.latents.shape == (2, T // 2, 64)
        assert out.vq.codes.shape == (2, T // 2)
        assert out.reconstruction.shape == (2, 2 * (T // 2), 39)
    assert receptive_field(m) == 24  # 3, 5, +3 (k4), then x2: +4 +4, +4 per residual block
    assert "receptive field: 24 frames = 255 ms" in summary(m)


def test_latent_norm_standardizes_each_channel_over_time():
    torch.manual_seed(0)
    m = vqvae(model_params(channels=32, latent_norm="sequence"))
    z = m.encoder(torch.randn(3, 60, 39) * 5 + 2)
    assert z.mean(dim=1).abs().max() < 1e-5
    assert (z.std(dim=1, unbiased=False) - 1).abs().max() < 1e-4
    assert not torch.allclose(
        vqvae(model_params(channels=32)).encoder(torch.randn(3, 60, 39)).mean(dim=1),
        torch.zeros(3, 64),
        atol=1e-3,
    )


@pytest.mark.parametrize(("kernel", "reach"), [(1, 2), (3, 5)])
def test_decoder_kernel_sets_how_far_a_latent_reaches(kernel: int, reach: int):
    torch.manual_seed(0)
    m = vqvae(model_params(channels=16, decoder_kernel=kernel, res_blocks=1)).eval()
    q, spk = torch.randn(1, 20, 64), torch.zeros(1, 64)
    moved = q.clone()
    moved[0, 10] += 1.0  # one latent changes
    diff = (m.decoder(moved, spk) - m.decoder(q, spk)).abs().sum(-1)[0]
    changed = torch.nonzero(diff > 1e-6).flatten()
    # latent 10 stands for frames 20, 21; how many latents either side an output frame sees
    assert changed.min() >= 20 - 2 * reach and changed.max() <= 21 + 2 * reach
    assert (changed.max() - changed.min()) >= 2 * reach if kernel > 1 else len(changed) <= 4
    with pytest.raises(ValueError, match="odd"):
        model_params(decoder_kernel=2)


def test_residual_blocks_and_speakers_are_trained_parameters():
    m = vqvae(model_params(res_blocks=3, channels=16), n_speakers=4)
    blocks = list(m.encoder.res)
    ptrs = {b.body[1].weight.data_ptr() for b in blocks}
    assert len(ptrs) == 3  # weights of their own, not one shared block
    names = dict(m.named_parameters())
    assert "speakers.weight" in names and names["speakers.weight"].shape == (4, 64)
    assert "speakers.weight" in m.state_dict()
    x = torch.randn(2, 48, 39)
    out = m(x, torch.tensor([1, 3]))
    out.reconstruction.sum().backward()
    grad = m.speakers.weight.grad
    assert grad[1].abs().sum() > 0 and grad[3].abs().sum() > 0 and grad[0].abs().sum() == 0


def test_speaker_embedding_is_stable_across_calls():
    """The reference drew a fresh untrained embedding on every call; ours is one module."""
    m = vqvae(model_params(channels=16), n_speakers=2).eval()
    x = torch.randn(1, 48, 39)
    torch.testing.assert_close(
        m(x, torch.tensor([1])).reconstruction, m(x, torch.tensor([1])).reconstruction
    )
    unseen = m.speaker_vectors(torch.tensor([-1]))
    torch.testing.assert_close(unseen[0], m.speakers.weight.mean(0))


def test_encoding_a_model_in_training_mode_leaves_its_codebook_as_it_was():
    q = quantizer(4, codebook_size=8, kind="ema")
    z = torch.randn(2, 16, 4, generator=torch.Generator().manual_seed(0))
    before = q.codebook.clone()
    assert q.training
    out = q.nearest(z)
    assert torch.equal(q.codebook, before) and q.training  # no EMA step, mode kept
    assert torch.equal(out.codes, torch.cdist(z.reshape(-1, 4), before).argmin(1).view(2, 16))
    q(z)  # forward in training mode: the EMA step
    assert not torch.equal(q.codebook, before)


def test_static_target_rebuilds_the_static_third_of_the_input_only():
    model = vqvae(model_params(target="static"), input_dim=39)
    assert model.output_dim == 13 and model.config()["data"]["output_dim"] == 13
    x = torch.randn(2, 16, 39, generator=torch.Generator().manual_seed(0))
    out = model(x, torch.tensor([0, 0]))
    assert out.reconstruction.shape == (2, 16, 13)
    loss = model.losses(x, out)["recon"]
    expected = torch.nn.functional.mse_loss(out.reconstruction, x[..., :13])
    assert torch.equal(loss, expected)
    shifted = x.clone()
    shifted[..., 13:] += 5.0  # the deltas do not enter the loss
    assert torch.equal(model.losses(shifted, out)["recon"], loss)
    with pytest.raises(ValueError, match="static \\+ delta"):
        vqvae(model_params(target="static"), input_dim=40)


def test_encoding_a_vqvae_in_training_mode_changes_nothing():
    model = vqvae(model_params(quantizer={"kind": "ema", "codebook_size": 8}), input_dim=39)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 16, 39, generator=torch.Generator().manual_seed(0))
    assert model.training
    model.encode(x)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize(("causal", "seen"), [(False, [19, 20, 21, 22]), (True, [18, 19, 20, 21])])
def test_the_frame_local_encoder_sees_four_frames_per_latent(causal: bool, seen: list[int]):
    """`model.encoder: frame`: latent 10 depends on frames 19..22 (centred; 18..21 causal, none
    after its own 20 ms), whatever the residual blocks; the conv encoder sees 24."""
    from vqspeech.model.vqvae import Encoder, encoder_args

    torch.manual_seed(0)
    cfg = model_params(encoder="frame", res_blocks=2)
    enc = Encoder(6, **encoder_args(cfg), causal=causal)
    assert all(enc(torch.randn(1, t, 6)).shape[1] == t // 2 for t in (15, 16, 41))
    x = torch.randn(1, 60, 6, requires_grad=True)
    enc(x)[0, 10].sum().backward()
    assert (x.grad[0].abs().sum(1) > 0).nonzero().squeeze(1).tolist() == seen
    model = vqvae(cfg)
    assert receptive_field(model) == 4 and "receptive field: 4 frames = 55 ms" in summary(model)
    assert receptive_field(vqvae()) == 24  # the conv encoder's (reaching 12 either side)
