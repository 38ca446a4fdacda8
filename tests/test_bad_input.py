"""Every bad input named in DESIGN.md, for the checks all corpora share (here via `folder`)."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pytest
import soundfile as sf

from vqspeech import manifest
from vqspeech.corpus import folder
from vqspeech.skips import BadInputError

from .conftest import write_grid, write_wav

STORED = PurePosixPath("data/raw/folder")


def good_corpus(root: Path) -> None:
    for spk in ("spk1", "spk2"):
        for i in range(2):
            write_wav(root / spk / f"{spk}_{i}.wav", 1.0)
            write_grid(root / spk / f"{spk}_{i}.TextGrid", 1.0)


def break_unreadable(root: Path) -> str:
    (root / "spk1" / "bad.wav").write_bytes(b"RIFF....not really a wav")
    write_grid(root / "spk1" / "bad.TextGrid", 1.0)
    return r"bad\.wav: unreadable audio"


def break_empty(root: Path) -> str:
    sf.write(str(root / "spk1" / "bad.wav"), [], 16000, format="WAV", subtype="PCM_16")
    write_grid(root / "spk1" / "bad.TextGrid", 1.0)
    return r"bad\.wav: empty audio"


def break_textgrid_syntax(root: Path) -> str:
    write_wav(root / "spk1" / "bad.wav", 1.0)
    (root / "spk1" / "bad.TextGrid").write_text('File type = "ooTextFile"\nnonsense\n')
    return r"bad\.TextGrid: not a readable TextGrid"


def break_length(root: Path) -> str:
    write_wav(root / "spk1" / "bad.wav", 1.0)
    write_grid(root / "spk1" / "bad.TextGrid", 1.5)
    return r"bad\.TextGrid: ends at 1\.500 s but the audio bad\.wav lasts 1\.000 s"


def break_label(root: Path) -> str:
    write_wav(root / "spk1" / "bad.wav", 1.0)
    write_grid(root / "spk1" / "bad.TextGrid", 1.0, ("sil", "XYZ", "sil"))
    return r"bad\.TextGrid: unknown phone labels \['XYZ'\]"


def break_missing_textgrid(root: Path) -> str:
    write_wav(root / "spk1" / "bad.wav", 1.0)
    return r"bad\.wav: no TextGrid found"


def break_missing_audio(root: Path) -> str:
    write_grid(root / "spk1" / "bad.TextGrid", 1.0)
    return r"bad\.wav: audio file not found"


BREAKS = [
    break_unreadable,
    break_empty,
    break_textgrid_syntax,
    break_length,
    break_label,
    break_missing_textgrid,
    break_missing_audio,
]


@pytest.mark.parametrize("breaker", BREAKS, ids=lambda f: f.__name__.removeprefix("break_"))
def test_fail_names_the_file(tmp_path: Path, breaker):
    good_corpus(tmp_path)
    pattern = breaker(tmp_path)
    candidates = folder.prepare(tmp_path, None)
    with pytest.raises(BadInputError, match=pattern) as err:
        manifest.build(candidates, STORED, "fail", 0.1, 2)
    assert "1 bad utterance(s)" in str(err.value)
    assert "data.on_error: skip" in str(err.value)


@pytest.mark.parametrize("breaker", BREAKS, ids=lambda f: f.__name__.removeprefix("break_"))
def test_skip_reports_the_file(tmp_path: Path, breaker):
    good_corpus(tmp_path)
    pattern = breaker(tmp_path)
    table, kept, skipped = manifest.build(folder.prepare(tmp_path, None), STORED, "skip", 0.1, 2)
    assert table.num_rows == 4 and len(kept) == 4
    assert "bad" not in table.column("utterance_id").to_pylist()
    assert [s.utterance_id for s in skipped] == ["bad"]
    assert "bad." in Path(skipped[0].file).name
    assert re.search(pattern, skipped[0].reason)


def test_length_within_tolerance_is_accepted(tmp_path: Path):
    write_wav(tmp_path / "spk1" / "a.wav", 1.0)
    write_grid(tmp_path / "spk1" / "a.TextGrid", 1.04)
    table, _, skipped = manifest.build(folder.prepare(tmp_path, None), STORED, "fail", 0.05, 1)
    assert table.num_rows == 1 and skipped == []


def test_all_bad_is_an_error_even_when_skipping(tmp_path: Path):
    write_wav(tmp_path / "spk1" / "a.wav", 1.0)
    with pytest.raises(manifest.ManifestError, match="no usable utterances"):
        manifest.build(folder.prepare(tmp_path, None), STORED, "skip", 0.1, 1)


def test_folder_layout_and_separate_textgrid_dir(tmp_path: Path):
    audio, grids = tmp_path / "audio", tmp_path / "grids"
    write_wav(audio / "p1" / "u1.flac", 0.5, sr=22050, fmt="FLAC")
    (audio / "p1" / "u1.lab").write_text("hello there\n")
    write_grid(grids / "p1" / "u1.TextGrid", 0.5)
    table, kept, _ = manifest.build(folder.prepare(audio, grids), STORED, "fail", 0.1, 1)
    row = table.to_pylist()[0]
    assert row == {
        "utterance_id": "u1",
        "speaker": "p1",
        "path": "data/raw/folder/audio/p1/u1.flac",
        "textgrid": "data/raw/folder/textgrids/p1/u1.TextGrid",
        "duration_s": pytest.approx(0.5),
        "sample_rate": 22050,
        "text": "hello there",
    }
    dest = tmp_path / "raw"
    manifest.materialize(kept, dest)
    assert (dest / "audio/p1/u1.flac").read_bytes() == (audio / "p1/u1.flac").read_bytes()
    assert (dest / "textgrids/p1/u1.TextGrid").is_file()


def test_duplicate_ids_are_an_error(tmp_path: Path):
    for spk in ("a", "b"):
        write_wav(tmp_path / spk / "same.wav", 0.5)
        write_grid(tmp_path / spk / "same.TextGrid", 0.5)
    with pytest.raises(manifest.ManifestError, match="duplicate utterance ids: \\['same'\\]"):
        manifest.build(folder.prepare(tmp_path, None), STORED, "fail", 0.1, 1)


def test_missing_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"data\.folder\.audio_dir"):
        folder.prepare(tmp_path / "nope", None)
