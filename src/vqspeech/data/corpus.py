"""The corpus `data.corpus` names, as manifest candidates: built (builtin), fetched (vctk) or
read (folder) into `root`. Adding a corpus: a module with `prepare(...) -> list[Candidate]` and a
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
        variants = [(v.name, v.f0_scale, v.tempo) for v in b.variants]
        speakers = builtin.speakers(list(b.voices), variants)
        n = b.utterances_per_speaker
        log.info("synthesizing %d speakers x %d utterances", len(speakers), n)
        return builtin.generate(root, speakers, n, b.seed, jobs)
    if data.corpus == "vctk":
        from vqspeech.data import vctk

        v = data.vctk
        archive = vctk.fetch(v.url, Path(v.archive_dir), v.sha256, v.size, v.retries, v.timeout_s)
        return vctk.prepare(archive, root, v.mic, Path(v.alignments), v.speakers)
    from vqspeech.data import folder

    f = data.folder
    grids = Path(f.textgrid_dir) if f.textgrid_dir else None
    log.info("reading %s (TextGrids from %s)", f.audio_dir, grids or f.audio_dir)
    return folder.prepare(Path(f.audio_dir), grids)
