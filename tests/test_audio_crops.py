"""Training crops pair each feature crop with exactly the samples its frames were computed from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vqspeech.features import shards
from vqspeech.features.acoustic import extract
from vqspeech.features.extract import Done, Row, process
from vqspeech.features.stats import Normalizer
from vqspeech.params import FeaturesParams
from vqspeech.train.crops import batch_audio, load_split, random_crops

from .conftest import audio_options, features, write_grid

CFG = features(kind="logmel", preemphasis=0.0)  # a frame depends on its window alone


def utterance(
    tmp_path: Path, name: str, seconds: float, seed: int, opts: tuple[FeaturesParams, float]
) -> Done:
    rng = np.random.default_rng(seed)
    pcm = (rng.standard_normal(int(seconds * 16000)) * 3000).astype(np.int16)
    wav = tmp_path / f"{name}.wav"
    sf.write(str(wav), pcm, 16000, subtype="PCM_16")
    grid = write_grid(tmp_path / f"{name}.TextGrid", seconds, ("sil", "AH", "T", "sil"))
    done = process(Row(name, "spk", "train", str(wav), str(grid), 16000), CFG, *opts)
    assert isinstance(done, Done)
    return done


def test_audio_crop_is_the_samples_of_the_feature_crop(tmp_path: Path):
    opts = audio_options(trim_silence=True, trim_margin_s=0.05)  # trimmed: audio cut likewise
    utts = [utterance(tmp_path, f"u{i}", 0.8 + 0.13 * i, i, opts).utterance for i in range(3)]
    shards.write(tmp_path / "part-00000.parquet", utts, CFG.dim)
    dim = CFG.dim
    data, _ = load_split(tmp_path, "train", Normalizer(np.zeros(dim), np.ones(dim)), audio=True)
    crop = 12
    utt, start = random_crops(data, crop, 40, np.random.default_rng(0))
    audio = batch_audio(data, utt, start, crop)
    assert audio.shape == (40, crop * 160) and audio.dtype == np.int16
    for b in range(40):
        u, s = utts[utt[b]], int(start[b])
        np.testing.assert_array_equal(audio[b], u.audio[160 * s : 160 * (s + crop)])
        # the crop's samples plus the last window's tail give back the crop's features exactly
        window = u.audio[160 * s : 160 * (s + crop - 1) + 400].astype(np.float32) / 32768
        feats = data.features[data.offsets[utt[b]] + s : data.offsets[utt[b]] + s + crop]
        np.testing.assert_allclose(extract(window, CFG), feats, rtol=1e-5, atol=1e-5)


def test_missing_audio_is_an_error_naming_the_shard(tmp_path: Path):
    done = utterance(tmp_path, "u", 0.5, 0, audio_options(audio=False))
    shards.write(tmp_path / "part-00000.parquet", [done.utterance], CFG.dim)
    z, o = np.zeros(CFG.dim), np.ones(CFG.dim)
    data, _ = load_split(tmp_path, "train", Normalizer(z, o))  # features alone still load
    with pytest.raises(ValueError, match="loaded without audio"):
        batch_audio(data, np.array([0]), np.array([0]), 4)
    with pytest.raises(ValueError, match=r"part-00000\.parquet: 1 utterances have fewer audio"):
        load_split(tmp_path, "train", Normalizer(z, o), audio=True)
