import numpy as np
import pytest
import torch

from vqspeech.synthesis import unit_decoder as U

SMALL = U.DecoderConfig(channels=32, speaker_dim=4, blocks=2, steps=150, crop_units=20)


def constructed(rng: np.random.Generator, n: int, length: int, patterns, offsets):
    units = [rng.integers(0, len(patterns), length) for _ in range(n)]
    speakers = rng.integers(0, len(offsets), n)
    frames = [
        (np.repeat(patterns[u], 2, axis=0) + offsets[s]).astype(np.float32)
        for u, s in zip(units, speakers, strict=True)
    ]
    return units, speakers, frames


def test_the_decoder_learns_a_constructed_mapping_with_its_speaker():
    """Each code is a fixed pattern of the bands for both of its frames, plus a per-speaker
    offset: after training, a new code sequence decodes to its patterns, as either speaker."""
    rng = np.random.default_rng(0)
    patterns = rng.normal(0, 1, (6, 8))
    offsets = np.array([[-0.8] * 8, [0.8] * 8])
    units, speakers, frames = constructed(rng, 24, 60, patterns, offsets)
    model = U.train(units, speakers, frames, 6, 2, SMALL, seed=0)
    new = rng.integers(0, 6, 40)
    for s in (0, 1):
        out = U.decode(model, new, s)
        assert out.shape == (80, 8)
        want = np.repeat(patterns[new], 2, axis=0) + offsets[s]
        assert np.abs(out - want).mean() < 0.1
    gap = U.decode(model, new, 1) - U.decode(model, new, 0)
    assert abs(gap.mean() - 1.6) < 0.2


def test_training_is_seeded_and_bad_input_is_named():
    rng = np.random.default_rng(1)
    units, speakers, frames = constructed(rng, 4, 30, rng.normal(0, 1, (3, 5)), np.zeros((1, 5)))
    quick = U.DecoderConfig(channels=8, speaker_dim=2, blocks=1, steps=3, crop_units=10)
    a = U.train(units, speakers, frames, 3, 1, quick, seed=5).state_dict()
    b = U.train(units, speakers, frames, 3, 1, quick, seed=5).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="utterance 1: 30 units but only 59 log-mel frames"):
        U.train(units, speakers, [frames[0], frames[1][:59], *frames[2:]], 3, 1, quick, seed=0)
    with pytest.raises(ValueError, match=r"utterance 0: codes outside \[0, 2\)"):
        U.train(units, speakers, frames, 2, 1, quick, seed=0)
    with pytest.raises(ValueError, match="no train utterance has 40 units"):
        U.train(units, speakers, frames, 3, 1, U.DecoderConfig(crop_units=40, steps=1), seed=0)
    with pytest.raises(ValueError, match="kernel must be odd"):
        U.UnitDecoder(3, 1, 5, U.DecoderConfig(kernel=4))
