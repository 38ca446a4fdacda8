"""A corpus users bring: a folder of wav/flac files plus MFA-layout TextGrids.

Speakers are the first folder level under `audio_dir` (`<speaker>/<utt>.wav`, as in MFA's corpus
layout). An utterance's id is `<speaker>_<utt>`, or `<utt>` when that already starts with
`<speaker>_` (VCTK's `p225/p225_001.wav`): stems like `001` repeat across speakers. A TextGrid is
looked up at the same relative path under `textgrid_dir` (default: `audio_dir`). Text comes from
a UTF-8 `.lab` or `.txt` file beside the audio when there is one. TextGrids with no audio are
reported too.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from vqspeech.data.manifest import Candidate

AUDIO_SUFFIXES = (".wav", ".flac")


def prepare(audio_dir: Path, textgrid_dir: Path | None) -> list[Candidate]:
    """Find every utterance under `audio_dir`; nothing is copied here."""
    if not audio_dir.is_dir():
        raise FileNotFoundError(f"{audio_dir}: audio folder (data.folder.audio_dir) not found")
    grids_root = textgrid_dir or audio_dir
    if not grids_root.is_dir():
        raise FileNotFoundError(f"{grids_root}: TextGrid folder (data.folder.textgrid_dir) missing")
    audio = sorted(p for p in audio_dir.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    candidates = []
    seen = set()
    for path in audio:
        rel = path.relative_to(audio_dir)
        speaker = rel.parts[0] if len(rel.parts) > 1 else path.stem.split("_")[0]
        grid = grids_root / rel.with_suffix(".TextGrid")
        seen.add(grid.resolve())
        candidates.append(_candidate(path, rel, speaker, grid if grid.is_file() else None))
    for grid in sorted(grids_root.rglob("*.TextGrid")):
        if grid.resolve() not in seen:  # an alignment whose audio is missing
            rel = grid.relative_to(grids_root).with_suffix(".wav")
            speaker = rel.parts[0] if len(rel.parts) > 1 else rel.stem.split("_")[0]
            candidates.append(_candidate(audio_dir / rel, rel, speaker, grid))
    if not candidates:
        raise FileNotFoundError(f"{audio_dir}: no {'/'.join(AUDIO_SUFFIXES)} files found")
    return candidates


def utterance_id(speaker: str, stem: str) -> str:
    """`<speaker>_<stem>`, unless `stem` is the speaker or already starts with `<speaker>_`."""
    return stem if stem == speaker or stem.startswith(f"{speaker}_") else f"{speaker}_{stem}"


def _candidate(audio: Path, rel: Path, speaker: str, grid: Path | None) -> Candidate:
    sides = (audio.with_suffix(suffix) for suffix in (".lab", ".txt"))
    return Candidate(
        utterance_id=utterance_id(speaker, audio.stem),
        speaker=speaker,
        audio=audio,
        textgrid=grid,
        stored_audio=PurePosixPath("audio", rel.as_posix()),
        stored_textgrid=PurePosixPath("textgrids", rel.with_suffix(".TextGrid").as_posix()),
        transcript=next((side for side in sides if side.is_file()), None),
    )
