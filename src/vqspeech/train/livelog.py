"""dvclive curves that survive a resume: the run's own curves are put back and rows logged after
the checkpoint are cut first."""

from __future__ import annotations

import csv
import io
import logging
import shutil
from pathlib import Path

from vqspeech.io import atomic

log = logging.getLogger(__name__)


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


CURVES = "curves"  # in a run's checkpoint folder: its dvclive TSVs as of its last checkpoint


def keep(live_dir: Path, run_folder: Path) -> None:
    """Copy the curves logged so far into the run's checkpoint folder (after each checkpoint):
    `live_dir` is shared by every run of the workspace, so another run may overwrite it before
    this one resumes."""
    src = live_dir / "plots" / "metrics"
    if not src.is_dir():
        return
    with atomic.atomic_dir(run_folder / CURVES) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)


def restore(run_folder: Path, live_dir: Path) -> bool:
    """Put the run's kept curves back under `live_dir` before it resumes; False if none kept."""
    src = run_folder / CURVES
    if not src.is_dir():
        return False
    with atomic.atomic_dir(live_dir / "plots" / "metrics") as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return True


def open_live(live_dir: Path, resume_at: int | None, folder: Path) -> object | None:
    """A dvclive.Live logging into `live_dir` (continued at `resume_at`, this run's curves put
    back from its run folder first), or None where dvclive is not installed."""
    try:
        from dvclive import Live
    except ImportError:  # a GPU box without dvclive still trains; curves are then not logged
        log.warning("dvclive is not installed: no training curves")
        return None
    if resume_at is not None:
        if restore(folder, live_dir):  # plots/train may hold another run's curves now
            log.info("restored this run's curves from %s/", folder)
        removed = truncate(live_dir, resume_at)
        log.info(
            "resuming dvclive curves at step %d (%d rows after it dropped)", resume_at, removed
        )
    return Live(dir=str(live_dir), resume=resume_at is not None, save_dvc_exp=False, dvcyaml=None)


class Curves:
    """A run's dvclive curves in `live_dir` (`live`: the dvclive.Live, None off rank 0 or without
    dvclive), copied into its run folder after every epoch (`keep`): a resume then never finds
    them older than the checkpoint."""

    def __init__(self, live_dir: Path, folder: Path, resume_at: int | None, main: bool) -> None:
        self.dir, self.folder = live_dir, folder
        self.live = open_live(live_dir, resume_at, folder) if main else None

    def keep(self) -> None:
        if self.live is not None:
            keep(self.dir, self.folder)

    def end(self) -> None:
        if self.live is not None:
            self.live.end()
