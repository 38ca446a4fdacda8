"""The corpus `data.corpus` names, as manifest candidates: built (builtin), fetched (vctk) or
read (folder) into `root`; utterances with a transcript and no TextGrid are aligned
(`data.aligner`). Adding a corpus: a module with `prepare(...) -> list[Candidate]` and a
branch here, plus its params section in vqspeech.params."""

from __future__ import annotations

import logging
from pathlib import Path

from vqspeech.data.manifest import Candidate
from vqspeech.params import DataParams

log = logging.getLogger(__name__)


def candidates(data: DataParams, root: Path, jobs: int) -> list[Candidate]:
    """Every utterance of the corpus, its files under `root` (or where the corpus lives)."""
    if data.corpus == "builtin":
        from vqspeech.data import builtin

        b = data.builtin
        log.info(
            "synthesizing preset %s: %d voices, %d speakers x %d utterances, channel %s",
            b.preset,
            len(b.voices),
            len(builtin.speakers(b)),
            b.utterances_per_speaker,
            b.channel,
        )
        return builtin.generate(root, b, jobs)
    if data.corpus == "vctk":
        from vqspeech.data import vctk

        v = data.vctk
        archive = vctk.fetch(v.url, Path(v.archive_dir), v.sha256, v.size, v.retries, v.timeout_s)
        alignments = Path(v.alignments) if v.alignments else None
        found = vctk.prepare(archive, root, v.mic, alignments, v.speakers)
    else:
        from vqspeech.data import folder

        f = data.folder
        grids = Path(f.textgrid_dir) if f.textgrid_dir else None
        log.info("reading %s (TextGrids from %s)", f.audio_dir, grids or f.audio_dir)
        found = folder.prepare(Path(f.audio_dir), grids)
    if data.aligner == "none":
        return found
    from vqspeech.data import forcealign

    return forcealign.align_candidates(found, root, jobs)
