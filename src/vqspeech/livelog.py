"""dvclive curves that survive a resume: rows logged after the checkpoint are cut first."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from vqspeech import atomic


def truncate(live_dir: Path, step: int) -> int:
    """Drop rows with a step beyond `step` from every dvclive .tsv under `live_dir`.

    A run killed after its last checkpoint logged steps it will log again when it resumes.
    Returns the number of rows removed.
    """
    removed = 0
    for tsv in sorted(live_dir.glob("plots/metrics/**/*.tsv")):
        rows = list(csv.DictReader(tsv.open(newline=""), delimiter="\t"))
        kept = [r for r in rows if int(r["step"]) <= step]
        removed += len(rows) - len(kept)
        if len(kept) != len(rows) and rows:
            out = io.StringIO()
            writer = csv.DictWriter(
                out, fieldnames=list(rows[0]), delimiter="\t", lineterminator="\n"
            )
            writer.writeheader()
            writer.writerows(kept)
            atomic.write_text(tsv, out.getvalue())
    return removed
