"""Every bad input named in docs/design.md, for the checks all corpora share (here via `folder`)."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path, PurePosixPath

import pytest
import soundfile as sf

from vqspeech.data import folder, manifest, vctk
from vqspeech.data.textgrid import write_phones
from vqspeech.io.skips import BadInputError

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
    return r"bad\.TextGrid: no audio file for this TextGrid \(looked for .*spk1/bad\{\.wav,\.flac,"


def break_empty_phone_tier(root: Path) -> str:
    write_wav(root / "spk1" / "bad.wav", 1.0)
    write_phones(root / "spk1" / "bad.TextGrid", [], 1.0)
    return r"bad\.TextGrid: tier 'phones' has no labelled intervals"


def break_transcript_encoding(root: Path) -> str:
    write_wav(root / "spk1" / "bad.wav", 1.0)
    write_grid(root / "spk1" / "bad.TextGrid", 1.0)
    (root / "spk1" / "bad.lab").write_bytes("café au lait\n".encode("latin-1"))
    return r"bad\.lab: transcript is not UTF-8 text \(byte 0xe9 at offset 3\)"


def break_textgrid_empty(root: Path) -> str:
    write_wav(root / "spk1" / "bad.wav", 1.0)
    (root / "spk1" / "bad.TextGrid").write_bytes(b"")
    return r"bad\.TextGrid: empty file"


BREAKS = [
    break_unreadable,
    break_empty,
    break_textgrid_syntax,
    break_length,
    break_label,
    break_missing_textgrid,
    break_missing_audio,
    break_transcript_encoding,
    break_textgrid_empty,
    break_empty_phone_tier,
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
    assert "spk1_bad" not in table.column("utterance_id").to_pylist()
    assert [s.utterance_id for s in skipped] == ["spk1_bad"]
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
        "utterance_id": "p1_u1",
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


def test_same_stem_under_two_speakers_gets_two_ids(tmp_path: Path):
    """The usual `<speaker>/001.wav` layout: ids carry the speaker, unless the stem already does."""
    for rel in ("a/001.wav", "b/001.wav", "p225/p225_001.wav", "p225/p225.wav"):
        write_wav(tmp_path / rel, 0.5)
        write_grid(tmp_path / rel.replace(".wav", ".TextGrid"), 0.5)
    table, _, skipped = manifest.build(folder.prepare(tmp_path, None), STORED, "fail", 0.1, 1)
    assert skipped == []
    assert table.column("utterance_id").to_pylist() == ["a_001", "b_001", "p225", "p225_001"]


def test_duplicate_ids_list_the_colliding_files(tmp_path: Path):
    write_wav(tmp_path / "a" / "same.wav", 0.5)
    write_wav(tmp_path / "a" / "same.flac", 0.5, fmt="FLAC")
    write_grid(tmp_path / "a" / "same.TextGrid", 0.5)
    write_wav(tmp_path / "b" / "other.wav", 0.5)
    write_grid(tmp_path / "b" / "other.TextGrid", 0.5)
    candidates = folder.prepare(tmp_path, None)
    flac, wav = tmp_path / "a" / "same.flac", tmp_path / "a" / "same.wav"
    with pytest.raises(BadInputError, match="2 bad utterance") as err:
        manifest.build(candidates, STORED, "fail", 0.1, 1)
    assert f"{flac}: utterance id 'a_same' is also the id of {wav}" in str(err.value)
    assert f"{wav}: utterance id 'a_same' is also the id of {flac}" in str(err.value)
    table, _, skipped = manifest.build(candidates, STORED, "skip", 0.1, 1)
    assert table.column("utterance_id").to_pylist() == ["b_other"]
    assert sorted(s.file for s in skipped) == [str(flac), str(wav)]


def vctk_archive(path: Path, transcript: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for utt in ("p225_001", "p225_002"):
            audio = io.BytesIO()
            sf.write(audio, [0.01] * 8000, 16000, format="FLAC")
            zf.writestr(f"wav48_silence_trimmed/p225/{utt}_mic1.flac", audio.getvalue())
            text = transcript if utt == "p225_002" else b"Fine text."
            zf.writestr(f"txt/p225/{utt}.txt", text)
    return path


def test_vctk_undecodable_transcript_is_a_listed_skip(tmp_path: Path):
    for utt in ("p225_001", "p225_002"):
        write_grid(tmp_path / "mfa" / "p225" / f"{utt}.TextGrid", 0.5)
    archive = vctk_archive(tmp_path / "vctk.zip", b"Caf\xe9.\n")
    root = tmp_path / "raw"
    candidates = vctk.prepare(archive, root, "mic1", tmp_path / "mfa", None)
    pattern = r"p225_002\.txt: transcript is not UTF-8 text"
    with pytest.raises(BadInputError, match=pattern):
        manifest.build(candidates, STORED, "fail", 0.1, 1)
    table, _, skipped = manifest.build(candidates, STORED, "skip", 0.1, 1)
    assert table.to_pylist()[0]["text"] == "Fine text."
    assert [(s.utterance_id, Path(s.file).name) for s in skipped] == [("p225_002", "p225_002.txt")]
    assert re.search(pattern, skipped[0].reason)


def test_missing_folder(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match=r"data\.folder\.audio_dir"):
        folder.prepare(tmp_path / "nope", None)


@pytest.mark.parametrize("fmt", ["OGG", "MP3"])
def test_every_format_libsndfile_reads_is_audio(tmp_path: Path, fmt: str):
    """An .ogg with its TextGrid and an .mp3 with its .lab transcript are utterances."""
    good_corpus(tmp_path)
    suffix = fmt.lower()
    write_wav(tmp_path / "spk1" / f"new.{suffix}", 1.0, fmt=fmt)
    write_grid(tmp_path / "spk1" / "new.TextGrid", 1.0)
    table, _, skipped = manifest.build(folder.prepare(tmp_path, None), STORED, "fail", 0.1, 1)
    assert skipped == []
    row = next(r for r in table.to_pylist() if r["utterance_id"] == "spk1_new")
    assert row["path"] == f"data/raw/folder/audio/spk1/new.{suffix}"
    assert row["duration_s"] == pytest.approx(1.0, abs=0.06)


def test_files_that_are_not_read_are_named(tmp_path: Path, caplog):
    good_corpus(tmp_path)
    (tmp_path / "spk1" / "notes.docx").write_bytes(b"PK")
    with caplog.at_level("WARNING"):
        candidates = folder.prepare(tmp_path, None)
    assert len(candidates) == 4
    assert "1 files are neither audio" in caplog.text and "notes.docx" in caplog.text


def test_symlinked_speaker_folder_is_followed(tmp_path: Path):
    corpus = tmp_path / "corpus"
    good_corpus(corpus)
    (corpus / "store" / "spk3").mkdir(parents=True)
    (corpus / "spk2").rename(corpus / "store" / "spk3" / "real")
    (corpus / "spk2").symlink_to(corpus / "store" / "spk3" / "real", target_is_directory=True)
    table, _, skipped = manifest.build(folder.prepare(corpus, None), STORED, "fail", 0.1, 1)
    assert skipped == []
    # the files the link reaches are listed once, under the first path that reaches them
    assert table.column("utterance_id").to_pylist() == ["spk1_0", "spk1_1", "spk2_0", "spk2_1"]


def test_symlink_leaving_the_corpus_is_refused(tmp_path: Path):
    corpus, outside = tmp_path / "corpus", tmp_path / "outside"
    good_corpus(corpus)
    good_corpus(outside)
    (corpus / "spk3").symlink_to(outside / "spk1", target_is_directory=True)
    with pytest.raises(folder.FolderError, match=r"spk3: a symbolic link to .*outside the corpus"):
        folder.prepare(corpus, None)


def test_links_to_files_count_once_and_dangling_links_are_named(tmp_path: Path):
    good_corpus(tmp_path)
    (tmp_path / "spk2" / "again.wav").symlink_to(tmp_path / "spk1" / "spk1_0.wav")
    assert len(folder.prepare(tmp_path, None)) == 4  # spk1_0 once, not also as spk2_again
    (tmp_path / "spk2" / "gone.wav").symlink_to(tmp_path / "spk2" / "nowhere.wav")
    with pytest.raises(
        folder.FolderError,
        match=r"gone\.wav: a symbolic link to .*nowhere\.wav, "
        "which does not exist",
    ):
        folder.prepare(tmp_path, None)


def test_unreadable_speaker_folder_is_an_error(tmp_path: Path, monkeypatch):
    """A folder that cannot be listed (as a user without read permission finds it: the tests run
    as root, whom permissions do not stop, so listing it is made to fail as it would)."""
    import os

    good_corpus(tmp_path)
    locked = tmp_path / "spk2"
    scandir = os.scandir

    def denied(path=".", *args):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path, *args)

    monkeypatch.setattr(os, "scandir", denied)
    with pytest.raises(folder.FolderError, match=r"spk2: cannot list this folder"):
        folder.prepare(tmp_path, None)


def test_names_are_read_in_nfc(tmp_path: Path):
    """A speaker folder written in NFD (as macOS stores names) is the NFC name of params.yaml."""
    import unicodedata

    nfd = unicodedata.normalize("NFD", "José")
    write_wav(tmp_path / nfd / f"{nfd}_1.wav", 0.5)
    write_grid(tmp_path / nfd / f"{nfd}_1.TextGrid", 0.5)
    table, _, _ = manifest.build(folder.prepare(tmp_path, None), STORED, "fail", 0.1, 1)
    row = table.to_pylist()[0]
    assert row["speaker"] == "José" == unicodedata.normalize("NFC", "José")
    assert row["utterance_id"] == "José_1"
