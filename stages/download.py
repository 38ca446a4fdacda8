"""download stage: build the corpus chosen by `data.corpus` into data/raw and index it.

Writes data/raw/<corpus>/..., data/manifest.parquet, data/download_report.json (every skipped
utterance and why) and metrics/download.json. All four are written beside their targets and put in
place only once all are complete, data/raw first: a failure leaves the old outputs, all of them.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path, PurePosixPath
from typing import Annotated

import typer

from vqspeech import atomic, manifest, stagelog
from vqspeech.params import DataParams

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
log = stagelog.setup()


@app.command()
def main(
    params_file: Annotated[Path, typer.Option("--params", help="params file")] = Path(
        "params.yaml"
    ),
    raw_dir: Annotated[Path, typer.Option(help="corpus folder to write")] = Path("data/raw"),
    manifest_path: Annotated[Path, typer.Option("--manifest")] = Path("data/manifest.parquet"),
    report_path: Annotated[Path, typer.Option("--report")] = Path("data/download_report.json"),
    metrics_path: Annotated[Path, typer.Option("--metrics")] = Path("metrics/download.json"),
) -> None:
    """Build the corpus and write its manifest."""
    data = stagelog.load_params_or_exit(log, params_file).data
    jobs = stagelog.jobs(data.jobs)
    stored_root = PurePosixPath(raw_dir.as_posix(), data.corpus)
    with stagelog.timed(log, f"download ({data.corpus}, {jobs} jobs)"):
        with stagelog.exit_on_error(log), contextlib.ExitStack() as outputs:
            atomic.remove_stale(raw_dir, manifest_path, report_path, metrics_path)
            # Put in place in the reverse order of entering: data/raw first, then the files that
            # describe it, so that no manifest ever points into a data/raw that is not there yet.
            metrics_tmp = outputs.enter_context(atomic.atomic_path(metrics_path))
            report_tmp = outputs.enter_context(atomic.atomic_path(report_path))
            manifest_tmp = outputs.enter_context(atomic.atomic_path(manifest_path))
            tmp = outputs.enter_context(atomic.atomic_dir(raw_dir))
            root = tmp / data.corpus
            candidates = _candidates(data, root, jobs)
            log.info("checking %d utterances", len(candidates))
            table, kept, skipped = manifest.build(
                candidates, stored_root, data.on_error, data.duration_tolerance_s, jobs
            )
            manifest.materialize(kept, root)
            for s in skipped:
                log.warning("skipped %s: %s", s.utterance_id, s.reason)
            stats = manifest.summary(table, skipped, data.corpus)
            manifest.write_into(table, manifest_tmp)
            report_tmp.write_text(manifest.report_text(skipped, stats), encoding="utf-8")
            metrics_tmp.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
        log.info(
            "wrote %s (%d utterances, %d speakers, %.2f h), %s/, %s; skipped %d",
            manifest_path, stats["utterances"], stats["speakers"], stats["hours"],
            raw_dir, report_path, len(skipped),
        )  # fmt: skip


def _candidates(data: DataParams, root: Path, jobs: int) -> list[manifest.Candidate]:
    if data.corpus == "builtin":
        from vqspeech.corpus import builtin

        b = data.builtin
        variants = [(v.name, v.f0_scale, v.tempo) for v in b.variants]
        speakers = builtin.speakers(list(b.voices), variants)
        n = b.utterances_per_speaker
        log.info("synthesizing %d speakers x %d utterances", len(speakers), n)
        return builtin.generate(root, speakers, n, b.seed, jobs)
    if data.corpus == "vctk":
        from vqspeech.corpus import vctk

        v = data.vctk
        archive = vctk.fetch(v.url, Path(v.archive_dir), v.sha256, v.size, v.retries, v.timeout_s)
        return vctk.prepare(archive, root, v.mic, Path(v.alignments), v.speakers)
    from vqspeech.corpus import folder

    f = data.folder
    grids = Path(f.textgrid_dir) if f.textgrid_dir else None
    log.info("reading %s (TextGrids from %s)", f.audio_dir, grids or f.audio_dir)
    return folder.prepare(Path(f.audio_dir), grids)


if __name__ == "__main__":
    sys.exit(app())
