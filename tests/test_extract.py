"""The features stage's per-utterance work and sharded export, including each bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from vqspeech.data.pcm import to_int16
from vqspeech.features import shards
from vqspeech.features.acoustic import extract
from vqspeech.features.extract import Done, Row, export, process
from vqspeech.io.skips import Skip

from .conftest import audio_options, features, write_grid

CFG = features()
OPTS = audio_options()


def make(
    tmp_path: Path,
    y: np.ndarray,
    sr: int = 16000,
    grid_s: float | None = None,
    name: str = "u",
    manifest_sr: int | None = None,
) -> Row:
    wav = tmp_path / f"{name}.wav"
    sf.write(str(wav), y, sr, subtype="FLOAT")
    seconds = len(y) / sr if grid_s is None else grid_s
    grid = write_grid(tmp_path / f"{name}.TextGrid", seconds, ("sil", "AH", "T", "sil"))
    return Row(name, "spk", "train", str(wav), str(grid), manifest_sr or sr)


def noise(seconds: float, sr: int = 16000, channels: int = 1) -> np.ndarray:
    y = 0.1 * np.random.default_rng(1).standard_normal((int(seconds * sr), channels))
    return y[:, 0] if channels == 1 else y


def test_good_utterance(tmp_path: Path):
    result = process(make(tmp_path, noise(1.0)), CFG, *OPTS)
    assert isinstance(result, Done)
    assert result.utterance.features.shape == (98, 39)
    assert result.utterance.phones[:5] == ["sil"] * 5 and result.utterance.phones[-1] == "sil"
    assert set(result.utterance.phones) == {"sil", "AH", "T"}
    assert not result.downmixed and not result.resampled


@pytest.mark.parametrize(
    ("case", "pattern"),
    [
        ("nan", r"u\.wav: 3 NaN/inf samples"),
        ("short", r"u\.wav: 20\.0 ms of audio is shorter than one 25 ms window"),
        ("grid_short", r"u\.TextGrid: ends at 0\.700 s, before the audio's end at 1\.000 s"),
        ("rate_mismatch", r"u\.wav: sample rate 22050 Hz, but the manifest says 16000"),
        ("low_rate", r"u\.wav: sample rate 8000 Hz is below 16000 Hz"),
        ("unreadable", r"u\.wav: unreadable audio"),
    ],
)
def test_bad_input_is_reported_with_the_file(tmp_path: Path, case: str, pattern: str):
    if case == "nan":
        y = noise(1.0)
        y[[10, 20, 30]] = [np.nan, np.inf, -np.inf]
        row = make(tmp_path, y)
    elif case == "short":
        row = make(tmp_path, noise(0.02))
    elif case == "grid_short":
        row = make(tmp_path, noise(1.0), grid_s=0.7)
    elif case == "rate_mismatch":
        row = make(tmp_path, noise(1.0, 22050), sr=22050, manifest_sr=16000)
    elif case == "low_rate":
        row = make(tmp_path, noise(1.0, 8000), sr=8000)
    else:
        row = make(tmp_path, noise(1.0))
        Path(row.path).write_bytes(b"RIFF garbage")
    result = process(row, CFG, *OPTS)
    assert isinstance(result, Skip)
    assert result.utterance_id == "u"
    assert re.search(pattern, result.reason), result.reason


def test_grid_slightly_short_is_extended_within_tolerance(tmp_path: Path):
    result = process(make(tmp_path, noise(1.0), grid_s=0.95), CFG, *OPTS)
    assert isinstance(result, Done) and len(result.utterance.phones) == 98


def test_upsampling_only_when_allowed(tmp_path: Path):
    row = make(tmp_path, noise(1.0, 8000), sr=8000)
    result = process(row, CFG, *audio_options(allow_upsampling=True))
    assert isinstance(result, Done) and result.resampled and len(result.utterance.phones) == 98


def test_stereo_is_downmixed(tmp_path: Path):
    stereo = noise(1.0, channels=2)
    result = process(make(tmp_path, stereo), CFG, *OPTS)
    assert isinstance(result, Done) and result.downmixed
    pcm = to_int16(stereo.astype(np.float32).mean(axis=1))  # features come from these samples
    np.testing.assert_array_equal(result.utterance.audio, pcm)
    mono = extract(pcm.astype(np.float32) / 32768, CFG)
    np.testing.assert_allclose(result.utterance.features, mono, rtol=1e-5, atol=1e-4)


def test_int16_audio_is_kept_exactly_or_not_at_all(tmp_path: Path):
    pcm = (noise(0.5) * 32768).round().astype(np.int16)
    sf.write(str(tmp_path / "i.wav"), pcm, 16000, subtype="PCM_16")
    row = make(tmp_path, noise(0.5), name="unused")
    row = Row("i", "spk", "train", str(tmp_path / "i.wav"), row.textgrid, 16000)
    kept = process(row, CFG, *OPTS)
    assert isinstance(kept, Done) and np.array_equal(kept.utterance.audio, pcm)  # lossless
    assert to_int16(np.array([-1.5, -1.0, 0.99999, 2.0])).tolist() == [-32768, -32768, 32767, 32767]
    dropped = process(row, CFG, *audio_options(audio=False))
    assert isinstance(dropped, Done) and dropped.utterance.audio is None
    np.testing.assert_array_equal(dropped.utterance.features, kept.utterance.features)


def test_float_audio_beyond_full_scale_is_scaled_not_clipped(tmp_path: Path):
    """A float file peaking at 4.0 keeps its waveform (scaled to full scale) and says so."""
    loud = noise(1.0) * 40  # peaks near 4.0: a quarter of its samples beyond +-1
    assert np.abs(loud).max() > 1.0
    result = process(make(tmp_path, loud), CFG, *OPTS)
    assert isinstance(result, Done) and result.peak == pytest.approx(np.abs(loud).max(), rel=1e-6)
    pcm = result.utterance.audio
    at_limits = np.mean((pcm == 32767) | (pcm == -32768))
    assert at_limits < 0.001  # the peak alone, not 17.9 % of the samples
    scale = 32767 / 32768 / np.abs(loud).max()
    np.testing.assert_allclose(pcm / 32768, loud * scale, atol=1 / 32768)
    quiet = process(make(tmp_path, noise(1.0), name="q"), CFG, *OPTS)
    assert isinstance(quiet, Done) and quiet.peak <= 1.0
    report = export(
        [make(tmp_path, loud, name="l"), make(tmp_path, noise(1.0), name="q")],
        tmp_path / "out",
        CFG,
        *OPTS,
        jobs=1,
    )
    listed = report.as_dict(CFG, OPTS[0], {"spk": "train"})
    assert listed["rescaled"] == 1
    assert listed["rescaled_utterances"][0]["utterance_id"] == "l"
    assert listed["rescaled_utterances"][0]["path"].endswith("l.wav")


def test_features_that_are_not_finite_are_bad_input(tmp_path: Path, monkeypatch):
    """A feature computation that yields NaN names the file; it never reaches a shard."""
    from vqspeech.features import extract as module

    def with_nan(y: np.ndarray, cfg) -> np.ndarray:
        out = extract(y, cfg)
        out[10, 3] = np.nan
        return out

    monkeypatch.setattr(module, "extract", with_nan)
    result = process(make(tmp_path, noise(1.0)), CFG, *OPTS)
    assert isinstance(result, Skip)
    assert re.search(
        r"u\.wav: 1 feature frames are not finite \(the first at 0\.10 s\)", result.reason
    )


def test_48k_is_resampled_to_the_same_features(tmp_path: Path):
    t48 = np.arange(48000) / 48000
    t16 = np.arange(16000) / 16000
    chord = lambda t: 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 2500 * t)  # noqa: E731
    r48 = process(make(tmp_path, chord(t48), sr=48000, name="a"), CFG, *OPTS)
    r16 = process(make(tmp_path, chord(t16), sr=16000, name="b"), CFG, *OPTS)
    assert isinstance(r48, Done) and r48.resampled
    static48, static16 = r48.utterance.features[2:-2, :13], r16.utterance.features[2:-2, :13]
    np.testing.assert_allclose(static48, static16, atol=0.05)


def test_trimming_cuts_silence_and_shifts_labels(tmp_path: Path):
    # 2 s, phones split evenly: sil [0, .5), AH [.5, 1), T [1, 1.5), sil [1.5, 2)
    row = make(tmp_path, noise(2.0))
    result = process(row, CFG, *audio_options(trim_silence=True, trim_margin_s=0.1))
    assert isinstance(result, Done)
    assert result.seconds == pytest.approx(1.2)  # 0.4 .. 1.6 s
    assert result.utterance.start_s == pytest.approx(0.4)
    phones = result.utterance.phones
    assert phones[:9] == ["sil"] * 9 and phones[9] == "AH"  # speech starts 0.1 s in
    assert phones.count("T") == 50


def test_export_writes_bounded_shards_in_manifest_order(tmp_path: Path):
    rows = [make(tmp_path, noise(1.0 + i / 10), name=f"u{i:02d}") for i in range(12)]
    rows.insert(5, make(tmp_path, noise(0.01), name="tiny"))
    out = tmp_path / "features"
    f, tolerance = audio_options(shard_mb=0.04)
    report = export(rows, out, CFG, f, tolerance, jobs=2)  # ~2 utterances per shard
    assert report.utterances == 12 and report.shards >= 5
    assert [s.utterance_id for s in report.skipped] == ["tiny"]
    back = list(shards.iter_utterances(out, audio=True))
    assert [u.utterance_id for u in back] == [f"u{i:02d}" for i in range(12)]
    assert all(u.start_s == 0.0 for u in back)
    for u, row in zip(back, [r for r in rows if r.utterance_id != "tiny"], strict=True):
        direct = process(row, CFG, *OPTS)
        np.testing.assert_array_equal(u.features, direct.utterance.features)
        np.testing.assert_array_equal(u.audio, direct.utterance.audio)
        assert u.phones == direct.utterance.phones
    assert all(u.audio is None for u in shards.iter_utterances(out))  # not read unless asked
    assert report.frames == sum(len(u.phones) for u in back)


def test_shard_schema_is_checked(tmp_path: Path):
    good = shards.Utterance("u", "s", "train", np.zeros((3, 39), np.float32), ["sil"] * 3)
    shards.write(tmp_path / "ok.parquet", [good], 39)
    table = shards.read(tmp_path / "ok.parquet")
    assert table.schema.equals(shards.schema(39))
    pq.write_table(pa.table({"utterance_id": ["u"], "features": [[1.0]]}), tmp_path / "bad.parquet")
    with pytest.raises(shards.ShardError, match=r"bad\.parquet: not a feature shard"):
        shards.read(tmp_path / "bad.parquet")
    with pytest.raises(shards.ShardError, match="no feature shards"):
        shards.files(tmp_path / "empty")
    with pytest.raises(ValueError, match="3 frames but 2 labels"):
        shards.Utterance("u", "s", "train", np.zeros((3, 39), np.float32), ["sil"] * 2)
