"""The built-in corpus, synthesized for real with flite, Festival and espeak-ng (installed by
`make`): presets, speakers, phone maps, alignments checked against the audio, determinism."""

from __future__ import annotations

import collections
import subprocess
from pathlib import Path, PurePosixPath

import librosa
import numpy as np
import pytest
import soundfile as sf

from vqspeech import phones
from vqspeech.data import builtin, engines, manifest
from vqspeech.data.sentences import sentence_for
from vqspeech.data.textgrid import Interval, PhoneAlignment, read_phones
from vqspeech.features.acoustic import FeatureConfig, extract, frame_labels
from vqspeech.params import BuiltinParams
from vqspeech.voices import ESPEAK_LANGUAGES, FESTIVAL_VOICES, FLITE_F0_HZ

from .conftest import RAW

# one voice of every engine (and each Festival kind), two drawn speakers each, mild channel
SMALL = BuiltinParams.model_validate(
    {
        **RAW["data"]["builtin"],
        "voices": [
            "flite/slt",
            "festival/kal_diphone",
            "festival/cmu_us_slt_arctic_hts",
            "espeak/en-us+f2",
        ],
        "speakers_per_voice": 2,
        "utterances_per_speaker": 3,
        "seed": 3,
        "held_out": {"val": ["festival/kal_diphone"], "test": ["espeak/en-us+f2", "flite/slt"]},
    }
)
FLITE12 = BuiltinParams.model_validate({**RAW["data"]["builtin"], "preset": "flite12"})
SPEC = {
    "flite": "flite/kal16",
    "festival-diphone": "festival/ked_diphone",
    "festival-hts": "festival/cmu_us_slt_arctic_hts",
    "espeak": "espeak/en-gb-x-rp",
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[manifest.Candidate]:
    return builtin.generate(tmp_path_factory.mktemp("builtin"), SMALL, jobs=2)


def test_parse_ends():
    out = "pau:0.184 dh:0.236 ax:0.270 k:0.270 s:0.400 pau:0.500 pau:0.620"
    assert engines.parse_ends(out.split(), "x") == [
        Interval(0.0, 0.184, "sil"),
        Interval(0.184, 0.236, "DH"),
        Interval(0.236, 0.270, "AH"),  # the zero-length k that follows is dropped
        Interval(0.270, 0.400, "S"),
        Interval(0.400, 0.620, "sil"),  # pau pau is one silence
    ]


def test_espeak_intervals_split_two_phone_phonemes():
    events = [(110, "h"), (1210, "aI@"), (3410, "_:"), (3520, "_")]
    got = engines.espeak_intervals(events, 3520, 22050)
    assert [iv.label for iv in got] == ["sil", "HH", "AY", "AH", "sil"]
    assert got[2].end == pytest.approx((1210 + 1100) / 22050)  # aI@ split evenly
    assert got[-1].end == pytest.approx(3520 / 22050) and got[0].start == 0.0


def test_flite12_preset_is_the_earlier_corpus():
    names = [s.name for s in builtin.speakers(FLITE12)]
    assert names == [
        f"{v}{x}" for v in ("awb", "rms", "slt", "kal16") for x in ("", "_high", "_low")
    ]
    assert all(s.warp == 1.0 for s in builtin.speakers(FLITE12))
    high = builtin.speakers(FLITE12)[1]
    assert (high.f0_scale, high.tempo) == (1.25, 1.1)
    utts = builtin.utterances(FLITE12)
    assert len(utts) == 960 and all(u.channel is None for u in utts)
    assert utts[81].prosody == engines.Prosody(1.25, 1.0, 1 / 1.1)  # the variant's, exactly
    assert utts[0].text == sentence_for(0, 0, 0) and utts[80].text == sentence_for(0, 1, 0)
    assert builtin.held_out(FLITE12) == (["awb_low", "slt_high"], ["rms", "rms_high", "rms_low"])


def test_read_preset_holds_out_whole_voices_of_several_engines():
    b = BuiltinParams.model_validate(RAW["data"]["builtin"])
    assert b.preset == "read" and b.channel == "mild"
    everyone = builtin.speakers(b)
    val, test = builtin.held_out(b)
    voice_of = {s.name: s.voice for s in everyone}
    for held in (val, test):
        voices = {voice_of[n] for n in held}
        assert len({v.split("/")[0] for v in voices}) >= 2
        # every speaker of a held-out voice is held out: no variant of it trains
        assert {s.name for s in everyone if s.voice in voices} == set(held)
    assert not set(val) & set(test)
    assert len(everyone) == 60 and len({s.name for s in everyone}) == 60
    warps = [s.warp for s in everyone]
    assert 0.88 <= min(warps) < 0.95 and 1.05 < max(warps) <= 1.12


def test_keys_beside_a_preset_override_it():
    b = BuiltinParams.model_validate(
        {"preset": "flite12", "seed": 0, "channel": "strong", "prosody": {"stretch": 0.2}}
    )
    assert b.channel == "strong" and b.prosody.stretch == 0.2 and b.prosody.f0_mean == 0.0
    assert b.voices == FLITE12.voices
    with pytest.raises(ValueError, match="espeak-ng voices are"):
        BuiltinParams.model_validate({**RAW["data"]["builtin"], "voices": ["espeak/klingon"]})
    with pytest.raises(ValueError, match="flite voices are"):
        BuiltinParams.model_validate({**RAW["data"]["builtin"], "voices": ["flite/kal"]})


def test_manifest_of_corpus(corpus: list[manifest.Candidate]):
    table, kept, skipped = manifest.build(corpus, PurePosixPath("data/raw/builtin"), "fail", 0.0, 2)
    assert skipped == [] and len(kept) == 24
    rows = table.to_pylist()
    names = {s.name for s in builtin.speakers(SMALL)}
    assert names == {
        "slt-0",
        "slt-1",
        "festival-kal_diphone-0",
        "festival-kal_diphone-1",
        "festival-cmu_us_slt_arctic_hts-0",
        "festival-cmu_us_slt_arctic_hts-1",
        "espeak-en-us-f2-0",
        "espeak-en-us-f2-1",
    }
    assert {r["speaker"] for r in rows} == names
    assert all(r["sample_rate"] == 16000 and r["duration_s"] > 0.5 for r in rows)
    assert all(r["text"].endswith((".", "?")) for r in rows)


def test_textgrid_ends_where_the_audio_ends(corpus: list[manifest.Candidate]):
    for c in corpus:
        info = sf.info(str(c.audio))
        assert info.samplerate == 16000 and info.subtype == "PCM_16"
        alignment = read_phones(c.textgrid)
        assert alignment.duration == pytest.approx(info.frames / info.samplerate, abs=1e-6)
        assert alignment.intervals[-1].end == pytest.approx(alignment.duration, abs=1e-6)
        assert alignment.intervals[0].start == 0.0


def _energies(corpus: list[manifest.Candidate], shift: float = 0.0):
    energy = collections.defaultdict(list)
    centroid = collections.defaultdict(list)
    for c in corpus:
        y, sr = sf.read(str(c.audio), dtype="float32")
        for iv in read_phones(c.textgrid).intervals:
            a, b = int((iv.start + shift) * sr), int((iv.end + shift) * sr)
            if b - a >= 400 and b <= len(y):  # 25 ms, enough for a spectrum
                seg = y[a:b]
                energy[iv.label].append(float(np.sqrt(np.mean(seg**2))))
                spec = librosa.feature.spectral_centroid(y=seg, sr=sr, n_fft=256, hop_length=128)
                centroid[iv.label].append(float(spec.mean()))
    return energy, centroid


def test_phone_timings_match_the_audio(corpus: list[manifest.Candidate]):
    """Silence is quieter and sibilants brighter exactly where the TextGrids put them, through
    the warp and the mild channel (noise at 20-35 dB, rooms)."""
    energy, centroid = _energies(corpus)
    silence = np.median(energy["sil"])
    speech = np.median([e for lab, es in energy.items() if lab != "sil" for e in es])
    assert silence < 0.2 * speech
    sibilants = np.median([c for lab in ("S", "SH", "Z") for c in centroid[lab]])
    vowels = np.median([c for lab in ("AA", "AE", "AH", "AO", "IY", "UW") for c in centroid[lab]])
    assert sibilants > 1.8 * vowels
    shifted, _ = _energies(corpus, 0.15)  # and the check is sensitive: 150 ms off breaks it
    speech_shifted = np.median([e for lab, es in shifted.items() if lab != "sil" for e in es])
    assert np.median(shifted["sil"]) > 0.2 * speech_shifted


def _agreement(feats: list[np.ndarray], alignments: list[PhoneAlignment], shift_s: float) -> float:
    """Share of the (normalized) MFCC variance that the phone labels explain when the tier is
    moved by shift_s: the labels that fit the audio best explain the most."""
    xs, labels = [], []
    for x, al in zip(feats, alignments, strict=True):
        moved = [Interval(iv.start + shift_s, iv.end + shift_s, iv.label) for iv in al.intervals]
        moved = [Interval(0.0, moved[0].start, "sil"), *moved] if shift_s > 0 else moved
        moved.append(Interval(moved[-1].end, moved[-1].end + 1.0, "sil"))
        keep = int((al.duration - 0.06) / 0.01) - 6
        lab = frame_labels(PhoneAlignment(tuple(moved), moved[-1].end), len(x), 0.01, 0.025)
        xs.append(x[6:keep])
        labels += lab[6:keep]
    x = np.concatenate(xs)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    codes = np.unique(labels, return_inverse=True)[1]
    means = np.stack([x[codes == c].mean(0) for c in range(codes.max() + 1)])
    return 1.0 - float(((x - means[codes]) ** 2).sum() / (x**2).sum())


@pytest.mark.parametrize("engine", sorted(SPEC))
@pytest.mark.parametrize("warp", [1.0, 0.9, 1.1])
def test_each_engine_aligns_with_its_audio(engine: str, warp: float):
    """The shift of the phone tier that best fits the audio is 0 ms, within one 10 ms frame, for
    every engine, with the vocal-tract warp moving every time. (On clean audio: reverberation
    smears energy late, which biases any such measure; that the channel moves no sample is
    tested on its own below.)"""
    speaker = builtin.Speaker("x", SPEC[engine], warp, 1.0, 1.0)
    texts = [sentence_for(5, 0, i) for i in range(12)]
    rendered = engines.render(speaker.voice, [(t, engines.Prosody()) for t in texts], texts)
    cfg = FeatureConfig("mfcc39", 26, 0.97, normalize="none")
    feats, alignments = [], []
    for i, (text, r) in enumerate(zip(texts, rendered, strict=True)):
        u = builtin.Utterance("u", speaker, text, engines.Prosody(), None, [i])
        samples, intervals, duration = builtin.finish(r, u, [])
        feats.append(extract(samples.astype(np.float32) / 32768, cfg)[:, :13])
        alignments.append(PhoneAlignment(tuple(intervals), duration))
    shifts = np.arange(-0.05, 0.0501, 0.005)
    scores = [_agreement(feats, alignments, float(s)) for s in shifts]
    best = float(shifts[int(np.argmax(scores))])
    assert abs(best) <= 0.0101, f"{engine} at warp {warp}: best shift {best * 1000:.0f} ms"
    assert max(scores) > scores[0] + 0.02  # and the measure does tell 50 ms apart


def test_warp_scales_formants_f0_and_times_exactly():
    text = "The young judge measured a thin wooden hook near the church."
    (r,) = engines.render("flite/slt", [(text, engines.Prosody())], ["x"])
    out = {}
    for warp in (1.0, 1.12):
        u = builtin.Utterance(
            "u", builtin.Speaker("x", "flite/slt", warp, 1, 1), text, engines.Prosody(), None, [0]
        )
        samples, intervals, duration = builtin.finish(r, u, [])
        y = samples.astype(np.float32) / 32768
        f0 = librosa.yin(y, fmin=80, fmax=500, sr=16000)
        loud = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0] > 0.02
        out[warp] = (np.median(f0[loud[: len(f0)]]), duration, intervals)
    assert out[1.12][0] / out[1.0][0] == pytest.approx(1.12, rel=0.04)
    assert out[1.12][1] == pytest.approx(out[1.0][1] / 1.12, abs=2 / 16000)
    for a, b in zip(out[1.0][2][:-1], out[1.12][2][:-1], strict=True):
        assert (b.label, b.end) == (a.label, pytest.approx(a.end / 1.12, abs=1e-9))


def test_prosody_changes_pitch_and_tempo_in_every_engine():
    text = "The young judge measured a thin wooden hook near the church."
    for spec in ("flite/slt", "festival/kal_diphone", "espeak/en-us"):
        base, high = engines.render(
            spec,
            [(text, engines.Prosody()), (text, engines.Prosody(1.25, 1.0, 1 / 1.15))],
            ["base", "high"],
        )
        stats = []
        for r in (base, high):
            y = librosa.resample(r.samples, orig_sr=r.sample_rate, target_sr=16000)
            f0 = librosa.yin(y, fmin=60, fmax=500, sr=16000)
            loud = librosa.feature.rms(y=y, frame_length=2048, hop_length=512)[0] > 0.02
            stats.append((np.median(f0[loud[: len(f0)]]), len(y) / 16000))
        assert stats[1][0] / stats[0][0] == pytest.approx(1.25, rel=0.12), spec
        assert stats[1][1] / stats[0][1] == pytest.approx(1 / 1.15, rel=0.08), spec
    hts = "festival/cmu_us_slt_arctic_hts"  # tempo only (hts_engine's speaking rate)
    base, fast = engines.render(
        hts, [(text, engines.Prosody()), (text, engines.Prosody(1.0, 1.0, 1 / 1.2))], ["a", "b"]
    )
    assert len(fast.samples) / len(base.samples) == pytest.approx(1 / 1.2, rel=0.08)


def test_channel_moves_no_sample_and_sets_the_snr():
    rng = np.random.default_rng(0)
    t = np.arange(32000) / 16000
    bursts = np.sin(2 * np.pi * 3 * t) > 0  # broadband bursts: one clear correlation peak
    clean = (0.1 * rng.standard_normal(len(t)) * bursts).astype(np.float32)
    rooms = builtin.channel.room_bank("strong", 1)
    for i in range(6):
        c = builtin.channel.Channel.draw("strong", np.random.default_rng(i))
        y = builtin.channel.apply(clean, c, rooms, rng)
        assert len(y) == len(clean)
        lags = np.arange(-200, 201)
        xc = [float(np.dot(np.roll(clean, lag), y)) for lag in lags]
        assert abs(lags[int(np.argmax(xc))]) <= 2  # the direct sound stays where it was
    c = builtin.channel.Channel((0.0,) * 8, 30.0, 7900.0, None, 12.0, 1.0, 0.0)
    y = builtin.channel.apply(clean, c, [], np.random.default_rng(1))
    expected = np.convolve(clean.astype(np.float64), builtin.channel.eq_filter(c), mode="same")
    noise = y - expected
    snr = 10 * np.log10(np.mean(expected**2) / np.mean(noise**2))
    assert snr == pytest.approx(12.0, abs=0.3)


def test_rooms_are_the_same_whatever_the_core_count():
    import pyroomacoustics as pra

    banks = []
    for threads in (1, 3):
        pra.constants.set("num_threads", threads)
        banks.append(b"".join(r.tobytes() for r in builtin.channel.room_bank("mild", 5)))
        assert pra.constants.get("num_threads") == threads  # restored
    assert banks[0] == banks[1]


def test_every_engine_phone_maps_to_the_inventory():
    """Every phone the engines say over many grammar sentences maps (each voice's phone set)."""
    texts = [sentence_for(0, s, u) for s in range(6) for u in range(20)]
    seen: collections.Counter[str] = collections.Counter()
    for spec in [
        *(f"festival/{v}" for v in FESTIVAL_VOICES),
        *(f"espeak/{lang}" for lang in ESPEAK_LANGUAGES),
    ]:
        for r in engines.render(spec, [(t, engines.Prosody()) for t in texts[:40]], texts[:40]):
            assert all(iv.label in phones.INVENTORY for iv in r.intervals)
            seen.update(iv.label for iv in r.intervals)
    missing = [p for p in phones.ARPABET if seen[p] < 10]
    assert not missing, f"phones seen fewer than 10 times: {missing}"
    with pytest.raises(phones.UnknownPhoneError, match="espeak-ng phoneme"):
        phones.from_espeak("X!")


def test_sentences_cover_every_phone_many_times():
    """The generator's sentences, as flite pronounces them, hold all 39 phones (>= 10 each)."""
    counts: collections.Counter[str] = collections.Counter()
    text = " ".join(sentence_for(0, s, u) for s in range(4) for u in range(40))
    out = subprocess.run(
        ["flite", "-voice", "kal16", "-psdur", "-t", text, "-o", "none"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    counts.update(iv.label for iv in engines.parse_ends(out.split(), "x"))
    missing = {p: counts[p] for p in phones.ARPABET if counts[p] < 10}
    assert not missing, f"phones seen fewer than 10 times in 160 sentences: {missing}"


def test_sentences_are_deterministic_and_varied():
    assert sentence_for(0, 1, 2) == sentence_for(0, 1, 2)
    many = {sentence_for(0, s, u) for s in range(12) for u in range(80)}
    assert len(many) > 950  # practically no repeats in the default corpus
    assert sentence_for(1, 1, 2) != sentence_for(0, 1, 2)


def _differing(a: list[manifest.Candidate], b: list[manifest.Candidate]) -> list[tuple]:
    """(utterance, samples a, samples b, largest sample difference) where the WAVs differ."""
    out = []
    for x, y in zip(a, b, strict=True):
        if x.audio.read_bytes() != y.audio.read_bytes():
            sx, sy = (sf.read(str(c.audio), dtype="int16")[0].astype(int) for c in (x, y))
            n = min(len(sx), len(sy))
            out.append((x.utterance_id, len(sx), len(sy), int(np.abs(sx[:n] - sy[:n]).max())))
    return out


def test_same_params_give_identical_bytes(tmp_path: Path, corpus: list[manifest.Candidate]):
    again = builtin.generate(tmp_path, SMALL, jobs=1)
    assert not _differing(corpus, again)  # names the utterances and by how much
    for a, b in zip(corpus, again, strict=True):
        assert a.textgrid.read_bytes() == b.textgrid.read_bytes()
    assert (tmp_path / "corpus.json").read_bytes() == (
        corpus[0].audio.parents[2] / "corpus.json"
    ).read_bytes()
    other = builtin.generate(tmp_path / "other", SMALL.model_copy(update={"seed": 4}), jobs=2)
    assert other[0].audio.read_bytes() != corpus[0].audio.read_bytes()


@pytest.mark.parametrize(
    ("spec", "package"), [("flite/awb", "flite"), ("festival/kal_diphone", "festival")]
)
def test_missing_engine_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, spec: str, package: str):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(engines.SynthesisError, match=f"apt-get install -y {package}"):
        engines.render(spec, [("Hello.", engines.Prosody())], ["x"])


def test_flite_voices_table_is_every_flite_voice():
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=True).stdout
    assert set(FLITE_F0_HZ) <= set(out.split())
