"""A corpus users bring: a folder of audio files plus MFA-layout TextGrids.

Speakers are the first folder level under `audio_dir` (`<speaker>/<utt>.wav`, as in MFA's corpus
layout). An utterance's id is `<speaker>_<utt>`, or `<utt>` when that already starts with
`<speaker>_` (VCTK's `p225/p225_001.wav`): stems like `001` repeat across speakers. Names are
read in Unicode NFC, whatever the file system wrote (macOS writes NFD), so they match params.yaml.
Audio is every format libsndfile reads (`AUDIO_SUFFIXES`: wav, flac, ogg/opus, mp3, aiff, ...).
A TextGrid is looked up at the same relative path under `textgrid_dir` (default: `audio_dir`).
Text comes from a UTF-8 `.lab` or `.txt` file beside the audio when there is one. TextGrids with
no audio are bad utterances; other files are listed in a warning, never dropped silently.

Symbolic links inside the folders are followed when they point inside the folder they are in
(a file reached twice is listed once, under its first path in sorted order; a folder reached
twice, under the path `os.walk` reaches it by first); one that leaves the folder or points
nowhere is refused (as archive members that escape are), and a folder that cannot be listed is
an error naming it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path, PurePosixPath

import soundfile as sf

from vqspeech.data.manifest import Candidate
from vqspeech.data.textgrid import TextGridError
from vqspeech.params import nfc

log = logging.getLogger(__name__)

# the file name suffixes of libsndfile's formats (soundfile.available_formats() names the formats)
_FORMAT_SUFFIXES = {
    "WAV": (".wav",),
    "WAVEX": (".wav",),
    "FLAC": (".flac",),
    "OGG": (".ogg", ".oga", ".opus"),
    "MP3": (".mp3",),
    "AIFF": (".aiff", ".aif", ".aifc"),
    "AU": (".au", ".snd"),
    "CAF": (".caf",),
    "W64": (".w64",),
    "RF64": (".rf64",),
    "NIST": (".sph", ".nist"),
    "IRCAM": (".sf",),
    "VOC": (".voc",),
}
_READ = sf.available_formats()
AUDIO_SUFFIXES = tuple(
    dict.fromkeys(s for f, ss in _FORMAT_SUFFIXES.items() if f in _READ for s in ss)
)
_SIDE_SUFFIXES = (".textgrid", ".lab", ".txt")


class FolderError(ValueError):
    """A corpus folder that cannot be read as a whole; the message names the path."""


def prepare(audio_dir: Path, textgrid_dir: Path | None) -> list[Candidate]:
    """Find every utterance under `audio_dir`; nothing is copied here."""
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"{audio_dir}: audio folder (data.folder.audio_dir) not found")
    grids_root = textgrid_dir or audio_dir
    if not grids_root.is_dir():
        raise FileNotFoundError(f"{grids_root}: TextGrid folder (data.folder.textgrid_dir) missing")
    found = walk(audio_dir)
    audio = [p for p in found if p.suffix.lower() in AUDIO_SUFFIXES]
    candidates = []
    seen = set()
    for path in audio:
        rel = path.relative_to(audio_dir)
        grid = grids_root / rel.with_suffix(".TextGrid")
        seen.add(grid)
        candidates.append(_candidate(path, rel, grid if grid.is_file() else None))
    grids = found if grids_root == audio_dir else walk(grids_root)
    for grid in (p for p in grids if p.suffix == ".TextGrid" and p not in seen):
        rel = grid.relative_to(grids_root)  # an alignment whose audio is missing
        where = audio_dir / rel.parent
        problem = TextGridError(
            f"{grid}: no audio file for this TextGrid (looked for "
            f"{where / rel.stem}{{{','.join(AUDIO_SUFFIXES)}}})"
        )
        candidates.append(_candidate(audio_dir / rel.with_suffix(".wav"), rel, grid, problem))
    ignored = [p for p in found if p.suffix.lower() not in AUDIO_SUFFIXES + _SIDE_SUFFIXES]
    if ignored:
        log.warning(
            "%s: %d files are neither audio (%s) nor TextGrids or transcripts, not read: %s",
            audio_dir,
            len(ignored),
            " ".join(AUDIO_SUFFIXES),
            ", ".join(map(str, ignored)),
        )
    if not candidates:
        raise FileNotFoundError(f"{audio_dir}: no audio files found ({' '.join(AUDIO_SUFFIXES)})")
    return candidates


def walk(root: Path) -> list[Path]:
    """Every file under `root`, sorted, following symbolic links that stay inside `root`.

    Raises FolderError for a folder that cannot be listed and for a link that leaves `root` or
    points nowhere."""
    real_root = root.resolve()

    def unreadable(exc: OSError) -> None:
        raise FolderError(
            f"{exc.filename}: cannot list this folder ({exc.strerror}); make it "
            "readable or move it out of the corpus"
        ) from None

    found, visited = [], set()
    for here, dirs, names in os.walk(root, onerror=unreadable, followlinks=True):
        real = Path(here).resolve()
        if real in visited:  # a link back up the tree: its files are listed once
            dirs[:] = []
            continue
        visited.add(real)
        dirs.sort()
        for name in dirs + names:
            path = Path(here, name)
            if not path.is_symlink():
                continue
            if not path.exists():
                raise FolderError(
                    f"{path}: a symbolic link to {os.readlink(path)}, which does not exist"
                )
            if not path.resolve().is_relative_to(real_root):
                raise FolderError(
                    f"{path}: a symbolic link to {path.resolve()}, outside the "
                    f"corpus folder {root}; copy it in instead"
                )
        found += [Path(here, name) for name in names]
    files, seen = [], set()
    for path in sorted(found):  # a file reached twice (a link to it): under its first path
        if path.is_file() and path.resolve() not in seen:
            seen.add(path.resolve())
            files.append(path)
    return files


def utterance_id(speaker: str, stem: str) -> str:
    """`<speaker>_<stem>`, unless `stem` is the speaker or already starts with `<speaker>_`."""
    speaker, stem = nfc(speaker), nfc(stem)
    return stem if stem == speaker or stem.startswith(f"{speaker}_") else f"{speaker}_{stem}"


def _candidate(
    audio: Path, rel: Path, grid: Path | None, problem: ValueError | None = None
) -> Candidate:
    speaker = nfc(rel.parts[0] if len(rel.parts) > 1 else rel.stem.split("_")[0])
    sides = (audio.with_suffix(suffix) for suffix in (".lab", ".txt"))
    return Candidate(
        utterance_id=utterance_id(speaker, audio.stem),
        speaker=speaker,
        audio=audio,
        textgrid=grid,
        stored_audio=PurePosixPath("audio", rel.as_posix()),
        stored_textgrid=PurePosixPath("textgrids", rel.with_suffix(".TextGrid").as_posix()),
        transcript=next((side for side in sides if side.is_file()), None),
        problem=problem,
    )
