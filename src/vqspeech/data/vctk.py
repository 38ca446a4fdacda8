"""VCTK 0.92: download, verify, extract one microphone's FLAC files, pair them with MFA TextGrids.

The archive holds `wav48_silence_trimmed/<spk>/<spk>_<nnn>_<mic>.flac` (48 kHz) and
`txt/<spk>/<spk>_<nnn>.txt`, with or without a top-level folder. Phone alignments are not part of
VCTK: they come from a folder of MFA TextGrids named `<spk>/<spk>_<nnn>.TextGrid` (or with the
microphone suffix, or flat), or, for utterances without one, from `data.aligner` (pocketsphinx,
from the transcript); the manifest check reports those that have neither.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

from vqspeech.data.archive import safe_extract
from vqspeech.data.fetch import download
from vqspeech.data.manifest import Candidate

log = logging.getLogger(__name__)

AUDIO_DIR = "wav48_silence_trimmed"


def fetch(
    url: str, archive_dir: Path, sha256: str, size: int | None, retries: int, timeout_s: float
) -> Path:
    """Download (or resume, or reuse) the verified archive under `archive_dir`."""
    name = PurePosixPath(url.split("?")[0]).name or "VCTK-Corpus-0.92.zip"
    return download(url, archive_dir / name, sha256, size, retries=retries, timeout_s=timeout_s)


def _wanted(mic: str, speakers: set[str] | None):
    def keep(path: PurePosixPath) -> bool:
        parts = path.parts
        if path.suffix == ".flac" and AUDIO_DIR in parts:
            chosen = speakers is None or path.parent.name in speakers
            return chosen and path.stem.endswith(f"_{mic}")
        if path.suffix == ".txt" and "txt" in parts[:-1]:
            return speakers is None or path.parent.name in speakers
        return path.name == "speaker-info.txt"

    return keep


def _find_textgrid(alignments: Path, speaker: str, utt: str, stem: str) -> Path | None:
    for candidate in (
        alignments / speaker / f"{utt}.TextGrid",
        alignments / speaker / f"{stem}.TextGrid",
        alignments / f"{utt}.TextGrid",
        alignments / f"{stem}.TextGrid",
    ):
        if candidate.is_file():
            return candidate
    return None


def prepare(
    archive: Path, root: Path, mic: str, alignments: Path | None, speakers: list[str] | None
) -> list[Candidate]:
    """Extract `archive` into `root` and return one candidate per extracted FLAC file (without
    `alignments`, none has a TextGrid: data.aligner aligns them from their transcripts)."""
    if alignments is not None and not alignments.is_dir():
        raise FileNotFoundError(f"{alignments}: alignments folder (data.vctk.alignments) not found")
    members = safe_extract(archive, root, _wanted(mic, set(speakers) if speakers else None))
    texts = {p.stem: p for p in members if p.suffix == ".txt" and p.name != "speaker-info.txt"}
    candidates = []
    for path in sorted(p for p in members if p.suffix == ".flac"):
        speaker = path.parent.name
        utt = path.stem.removesuffix(f"_{mic}")
        text_path = texts.get(utt)
        candidates.append(
            Candidate(
                utterance_id=utt,
                speaker=speaker,
                audio=root / path,
                textgrid=_find_textgrid(alignments, speaker, utt, path.stem)
                if alignments
                else None,
                stored_audio=path,
                stored_textgrid=PurePosixPath("textgrids", speaker, f"{utt}.TextGrid"),
                transcript=root / text_path if text_path else None,
            )
        )
    if not candidates:
        raise FileNotFoundError(f"{archive}: no {mic} FLAC files under {AUDIO_DIR}/")
    log.info("extracted %d %s utterances from %s", len(candidates), mic, archive)
    return candidates
