"""The built-in corpus, synthesized for real with flite (installed by `make`)."""

from __future__ import annotations

import collections
import subprocess
from pathlib import Path, PurePosixPath

import librosa
import numpy as np
import pytest
import soundfile as sf

from vqspeech.data import builtin, manifest
from vqspeech.data.sentences import sentence_for
from vqspeech.data.textgrid import Interval, read_phones
from vqspeech.phones import ARPABET

SPEAKERS = builtin.speakers(["slt", "kal16"], [("base", 1.0, 1.0), ("high", 1.25, 1.1)])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[manifest.Candidate]:
    root = tmp_path_factory.mktemp("builtin")
    return builtin.generate(root, SPEAKERS, per_speaker=5, seed=3, jobs=2)


def test_parse_psdur():
    out = "pau:0.184 dh:0.236 ax:0.270 k:0.270 s:0.400 pau:0.500 pau:0.620 "
    assert builtin.parse_psdur(out) == [
        Interval(0.0, 0.184, "sil"),
        Interval(0.184, 0.236, "DH"),
        Interval(0.236, 0.270, "AH"),  # the zero-length k that follows is dropped
        Interval(0.270, 0.400, "S"),
        Interval(0.400, 0.620, "sil"),  # pau pau is one silence
    ]


def test_speaker_names():
    assert [s.name for s in SPEAKERS] == ["slt", "slt_high", "kal16", "kal16_high"]
    assert SPEAKERS[0].flite_options() == ["-voice", "slt"]
    assert "int_f0_target_mean=213.8" in SPEAKERS[1].flite_options()


def test_manifest_of_corpus(corpus: list[manifest.Candidate]):
    table, kept, skipped = manifest.build(corpus, PurePosixPath("data/raw/builtin"), "fail", 0.0, 2)
    assert skipped == [] and len(kept) == 20
    rows = table.to_pylist()
    assert rows[0]["path"] == "data/raw/builtin/wav/kal16/kal16_0000.wav"
    assert rows[0]["textgrid"] == "data/raw/builtin/textgrids/kal16/kal16_0000.TextGrid"
    assert {r["speaker"] for r in rows} == {s.name for s in SPEAKERS}
    assert all(r["sample_rate"] == 16000 and r["duration_s"] > 0.5 for r in rows)
    assert all(r["text"].endswith((".", "?")) for r in rows)


def test_textgrid_ends_where_the_audio_ends(corpus: list[manifest.Candidate]):
    for c in corpus:
        info = sf.info(str(c.audio))
        alignment = read_phones(c.textgrid)
        assert alignment.duration == pytest.approx(info.frames / info.samplerate, abs=1e-6)
        assert alignment.intervals[-1].end == pytest.approx(alignment.duration, abs=1e-6)
        assert alignment.intervals[0].start == 0.0


def _segments(corpus: list[manifest.Candidate]):
    for c in corpus:
        y, sr = sf.read(str(c.audio), dtype="float32")
        for iv in read_phones(c.textgrid).intervals:
            a, b = int(iv.start * sr), int(iv.end * sr)
            if b - a >= 400:  # 25 ms, enough for a spectrum
                yield iv.label, y[a:b], sr


def test_phone_timings_match_the_audio(corpus: list[manifest.Candidate]):
    """Silence is quiet and sibilants are bright exactly where the TextGrid puts them."""
    energy = collections.defaultdict(list)
    centroid = collections.defaultdict(list)
    for label, seg, sr in _segments(corpus):
        energy[label].append(float(np.sqrt(np.mean(seg**2))))
        spec = librosa.feature.spectral_centroid(y=seg, sr=sr, n_fft=256, hop_length=128)
        centroid[label].append(float(spec.mean()))
    silence = np.median(energy["sil"])
    speech = np.median([e for lab, es in energy.items() if lab != "sil" for e in es])
    assert silence < 0.1 * speech
    sibilants = np.median([c for lab in ("S", "SH", "Z") for c in centroid[lab]])
    vowels = np.median([c for lab in ("AA", "AE", "AH", "AO", "IY", "UW") for c in centroid[lab]])
    assert sibilants > 2.0 * vowels


def test_shifted_timings_would_fail_the_check(corpus: list[manifest.Candidate]):
    """The silence-energy check above is sensitive: a 150 ms shift of the tier breaks it."""
    ratios = []
    for c in corpus[:5]:
        y, sr = sf.read(str(c.audio), dtype="float32")
        sil, speech = [], []
        for iv in read_phones(c.textgrid).intervals:
            a, b = int((iv.start + 0.15) * sr), int((iv.end + 0.15) * sr)
            if b - a >= 400 and b <= len(y):
                (sil if iv.label == "sil" else speech).append(np.sqrt(np.mean(y[a:b] ** 2)))
        ratios.append(np.median(sil) / np.median(speech))
    assert np.median(ratios) > 0.1


def test_variants_change_pitch_and_tempo(tmp_path: Path):
    flite = builtin.flite_binary()
    text = "The young judge measured a thin wooden hook near the church."
    base, high = builtin.speakers(["slt"], [("base", 1.0, 1.0), ("high", 1.25, 1.1)])
    stats = {}
    for s in (base, high):
        wav, grid = tmp_path / f"{s.name}.wav", tmp_path / f"{s.name}.TextGrid"
        builtin.synthesize(flite, s, text, wav, grid)
        y, sr = sf.read(str(wav), dtype="float32")
        f0 = librosa.yin(y, fmin=80, fmax=450, sr=sr)
        loud = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0] > 0.02
        stats[s.name] = (np.median(f0[loud[: len(f0)]]), len(y) / sr)
    f0_ratio = stats["slt_high"][0] / stats["slt"][0]
    dur_ratio = stats["slt_high"][1] / stats["slt"][1]
    assert f0_ratio == pytest.approx(1.25, rel=0.08)
    assert dur_ratio == pytest.approx(1 / 1.1, rel=0.05)


def test_sentences_cover_every_phone_many_times():
    """The generator's sentences, as flite pronounces them, hold all 39 phones (>= 10 each)."""
    counts: collections.Counter[str] = collections.Counter()
    text = " ".join(sentence_for(0, s, u) for s in range(4) for u in range(40))
    out = subprocess.run(
        [builtin.flite_binary(), "-voice", "kal16", "-psdur", "-t", text, "-o", "none"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    counts.update(iv.label for iv in builtin.parse_psdur(out))
    missing = {p: counts[p] for p in ARPABET if counts[p] < 10}
    assert not missing, f"phones seen fewer than 10 times in 160 sentences: {missing}"


def test_sentences_are_deterministic_and_varied():
    assert sentence_for(0, 1, 2) == sentence_for(0, 1, 2)
    many = {sentence_for(0, s, u) for s in range(12) for u in range(80)}
    assert len(many) > 950  # practically no repeats in the default corpus
    assert sentence_for(1, 1, 2) != sentence_for(0, 1, 2)


def test_same_params_give_identical_bytes(tmp_path: Path, corpus: list[manifest.Candidate]):
    again = builtin.generate(tmp_path, SPEAKERS, per_speaker=5, seed=3, jobs=1)
    for a, b in zip(corpus, again, strict=True):
        assert a.audio.read_bytes() == b.audio.read_bytes()
        assert a.textgrid.read_bytes() == b.textgrid.read_bytes()
    stored = PurePosixPath("data/raw/builtin")
    manifests = []
    for i, cands in enumerate((corpus, again)):
        table, _, _ = manifest.build(cands, stored, "fail", 0.0, 2)
        manifest.write(table, tmp_path / f"m{i}.parquet")
        manifests.append((tmp_path / f"m{i}.parquet").read_bytes())
    assert manifests[0] == manifests[1]


def test_missing_flite_is_a_clear_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(builtin.FliteError, match="apt-get install -y flite"):
        builtin.flite_binary()
