"""Forced alignment of transcript-only corpora (pocketsphinx), on real recordings: the LibriVox
and AN4 utterances of Debian's pocketsphinx-testdata (installed by `make`), and on the built-in
corpus, whose exact alignments say how close pocketsphinx's boundaries come."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from vqspeech import phones
from vqspeech.data import builtin, forcealign, manifest
from vqspeech.data.textgrid import Interval, read_phones
from vqspeech.params import BuiltinParams

from .conftest import RAW, REPO, TINY_MODEL, TINY_TRAIN, params_yaml

TESTDATA = Path("/usr/share/pocketsphinx/test/data")


def recordings() -> dict[str, list[tuple[Path, str]]]:
    """speaker -> (wav, transcript) of the test data: a LibriVox reader and an AN4 speaker."""
    out: dict[str, list[tuple[Path, str]]] = {}
    for speaker, folder, listing in (
        ("austen", "librivox", "transcription"),
        ("cards", "cards", "cards.transcription"),
    ):
        for line in (TESTDATA / folder / listing).read_text().splitlines():
            text, _, uid = line.rpartition("(")
            text = text.replace("<s>", "").replace("</s>", "").strip()
            out.setdefault(speaker, []).append((TESTDATA / folder / f"{uid.strip(') ')}.wav", text))
    return out


def test_words_of_a_transcript():
    assert forcealign.words("The zebra's 'quiet', FOGGY-ish day!\n") == [
        "the",
        "zebra's",
        "quiet",
        "foggy",
        "ish",
        "day",
    ]


def test_typographic_punctuation_keeps_words_whole():
    """Curly apostrophes do not split words (no phantom S or T phones), quotes and dashes go."""
    assert forcealign.words(
        "It\u2019s \u201cfine\u201d \u2013 can\u2019t we\u2014\u2018go\u2019?"
    ) == ["it's", "fine", "can't", "we", "go"]
    aligner = forcealign.Aligner()
    assert aligner.missing_words(forcealign.words("It\u2019s what they can\u2019t say")) == []


def test_real_recordings_align(tmp_path: Path):
    aligner = forcealign.Aligner()
    for speaker, utts in recordings().items():
        for wav, text in utts:
            grid = tmp_path / speaker / f"{wav.stem}.TextGrid"
            grid.parent.mkdir(parents=True, exist_ok=True)
            samples = forcealign.load_16k(wav)
            forcealign.write_alignment(aligner, samples, text, grid, wav.with_suffix(".lab"))
            al = read_phones(grid)
            assert al.duration == pytest.approx(len(samples) / 16000)
            assert set(al.labels) <= phones.INVENTORY and al.labels.count("sil") >= 1
            spoken = [p for p in al.labels if p not in phones.SILENCES]
            assert len(spoken) >= 2 * len(text.split())  # every word has its phones
            ends = [iv.end for iv in al.intervals]
            assert ends == sorted(ends) and al.intervals[0].start == 0.0
            assert "words" in grid.read_text() and f'"{text.split()[-1]}"' in grid.read_text()


def test_missing_words_are_listed():
    aligner = forcealign.Aligner()
    assert aligner.missing_words(["the", "xyzzyq", "plugh", "xyzzyq"]) == ["xyzzyq", "plugh"]
    with pytest.raises(
        forcealign.AlignError,
        match=r"t\.lab: words not in the pronunciation "
        r"dictionary: xyzzyq, plugh",
    ):
        aligner.align(np.zeros(16000, np.int16), ["the", "xyzzyq", "plugh"], "t.lab")


def test_boundary_errors_match_phones_across_pronunciations():
    ref = [
        Interval(0, 0.1, "sil"),
        Interval(0.1, 0.2, "DH"),
        Interval(0.2, 0.3, "AH"),
        Interval(0.3, 0.5, "K"),
        Interval(0.5, 0.6, "sil"),
    ]
    hyp = [
        Interval(0, 0.12, "sil"),
        Interval(0.12, 0.2, "DH"),
        Interval(0.2, 0.32, "IY"),
        Interval(0.32, 0.45, "K"),
        Interval(0.45, 0.6, "sil"),
    ]
    errors = forcealign.boundary_errors(ref, hyp)
    assert sorted(np.round(errors, 3)) == [0.0, 0.02, 0.02, 0.05]  # DH start/end, K start/end


def test_pocketsphinx_boundaries_against_exact_ones(tmp_path: Path):
    """On built-in speech with exact alignments, most boundaries land within 50 ms (the full
    measurement per engine is in docs/corpus.md)."""
    b = BuiltinParams.model_validate(
        {
            **RAW["data"]["builtin"],
            "voices": ["flite/rms", "festival/kal_diphone", "espeak/en-us"],
            "speakers_per_voice": 1,
            "utterances_per_speaker": 4,
            "channel": "off",
        }
    )
    aligner = forcealign.Aligner()
    errors, failed = [], 0
    for c in builtin.generate(tmp_path, b, jobs=2):
        try:
            hyp, _ = aligner.align(forcealign.load_16k(c.audio), forcealign.words(c.text), c.text)
        except forcealign.AlignError as exc:  # pocketsphinx gives up on some robotic speech
            assert "found no alignment" in str(exc)
            failed += 1
            continue
        errors.append(forcealign.boundary_errors(read_phones(c.textgrid).intervals, hyp))
    assert failed <= 1
    e = np.concatenate(errors)
    assert len(e) > 300
    assert np.mean(e <= 0.05) > 0.85 and np.mean(e <= 0.02) > 0.55


def _folder(tmp_path: Path) -> Path:
    audio = tmp_path / "corpus"
    for speaker, utts in recordings().items():
        (audio / speaker).mkdir(parents=True)
        for wav, text in utts:
            shutil.copy(wav, audio / speaker / wav.name)
            (audio / speaker / wav.name).with_suffix(".lab").write_text(text + "\n")
    return audio


def run(work: Path, stage: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "stages" / f"{stage}.py"), *args],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_transcript_only_folder_runs_end_to_end(tmp_path: Path):
    """Real recordings with .lab transcripts and no TextGrid: aligned, featurized, trained on,
    encoded and scored (numbers are not the point here; that nothing breaks is)."""
    audio = _folder(tmp_path)
    (audio / "austen/extra.wav").write_bytes(
        (audio / "austen").glob("*.wav").__next__().read_bytes()
    )
    (audio / "austen/extra.lab").write_text("the quux frobnicates\n")  # words not in CMUdict
    first = next(p for p in sorted((audio / "austen").glob("*.lab")) if p.stem != "extra")
    (audio / "austen" / f"{'l' * 240}.wav").write_bytes(first.with_suffix(".wav").read_bytes())
    (audio / "austen" / f"{'l' * 240}.lab").write_bytes(first.read_bytes())
    params = {
        "data": {"corpus": "folder", "on_error": "skip", "folder": {"audio_dir": str(audio)}},
        "features": {"split": {"val_speakers": [], "test_speakers": ["cards"]}},
        "model": TINY_MODEL,
        "train": {**TINY_TRAIN, "crop_frames": 32},
        "eval": {"plots": {"umap_points": 20, "utterances": 1}},
    }
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(params_yaml(**params))
    proc = run(work, "download")
    assert proc.returncode == 0, proc.stderr
    assert "aligning 12 utterances that have a transcript but no TextGrid" in proc.stderr
    report = json.loads((work / "data/download_report.json").read_text())
    (skip,) = report["skipped_utterances"]
    assert skip["utterance_id"] == "austen_extra" and skip["file"].endswith("extra.lab")
    assert "not in the pronunciation dictionary: quux, frobnicates" in skip["reason"]
    table = manifest.read(work / "data/manifest.parquet")
    assert (
        table.num_rows == 11 and f"austen_{'l' * 240}" in table.column("utterance_id").to_pylist()
    )
    for grid in table.column("textgrid").to_pylist():
        assert (work / grid).is_file() and read_phones(work / grid).labels
    for stage in ("features", "stats", "train", "align", "evaluate"):
        proc = run(work, stage, *(["run"] if stage == "train" else []))
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-3000:]}"
    codes = pq.read_table(work / "data/codes/codes.parquet")
    assert set(codes.column("utterance_id").to_pylist()) == {f"cards_00{i}" for i in range(1, 6)}
    headline = json.loads((work / "metrics/eval.json").read_text())
    assert 0 <= headline["vqvae"]["pnmi"] <= 1 and 0 <= headline["kmeans_mfcc"]["pnmi"] <= 1
    # and with data.on_error: fail, the unalignable utterance stops the stage naming the file
    params["data"]["on_error"] = "fail"
    (work / "params.yaml").write_text(params_yaml(**params))
    proc = run(work, "download")
    assert proc.returncode == 1 and "extra.lab: words not in the pronunciation" in proc.stderr


def test_without_an_aligner_a_transcript_is_not_an_alignment(tmp_path: Path):
    audio = _folder(tmp_path)
    params = {"corpus": "folder", "aligner": "none", "folder": {"audio_dir": str(audio)}}
    work = tmp_path / "work"
    work.mkdir()
    (work / "params.yaml").write_text(params_yaml(data=params))
    proc = run(work, "download")
    assert proc.returncode == 1 and "no TextGrid found for this utterance" in proc.stderr
