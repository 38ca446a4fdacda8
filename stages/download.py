"""download stage: build the corpus chosen by `data.corpus` into data/raw and index it.

Writes data/raw/<corpus>/..., data/manifest.parquet, data/download_report.json (every skipped
utterance and why) and metrics/download.json (hours, utterances, speakers).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path, PurePosixPath
from typing import Annotated

from vqspeech import cli

app = cli.app(__doc__)


@app.command()
def main(
    params_file: cli.ParamsFile = cli.PARAMS,
    raw_dir: Annotated[Path, cli.opt("--raw-dir", "Corpus folder to write.")] = Path("data/raw"),
    manifest_path: Annotated[Path, cli.opt("--manifest", "Manifest to write.")] = cli.MANIFEST,
    report_path: Annotated[Path, cli.opt("--report", "Download report to write.")] = Path(
        "data/download_report.json"
    ),
    metrics_path: Annotated[Path, cli.opt("--metrics", "Corpus metrics to write.")] = Path(
        "metrics/download.json"
    ),
) -> None:
    """Build the corpus and write its manifest."""
    from vqspeech.data import corpus, manifest
    from vqspeech.io import atomic

    outputs = (raw_dir, manifest_path, report_path, metrics_path)
    with cli.stage("download", params_file, *outputs) as params, contextlib.ExitStack() as out:
        data = params.data
        jobs = cli.jobs(data.jobs)
        cli.log.info("corpus %s, %d jobs", data.corpus, jobs)
        # Put in place in the reverse order of entering: data/raw first, then the files that
        # describe it, so that no manifest ever points into a data/raw that is not there yet.
        metrics_tmp = out.enter_context(atomic.atomic_path(metrics_path))
        report_tmp = out.enter_context(atomic.atomic_path(report_path))
        manifest_tmp = out.enter_context(atomic.atomic_path(manifest_path))
        root = out.enter_context(atomic.atomic_dir(raw_dir)) / data.corpus
        candidates = corpus.candidates(data, root, jobs)
        cli.log.info("checking %d utterances", len(candidates))
        stored_root = PurePosixPath(raw_dir.as_posix(), data.corpus)
        table, kept, skipped = manifest.build(
            candidates, stored_root, data.on_error, data.duration_tolerance_s, jobs
        )
        manifest.materialize(kept, root)
        for s in skipped:
            cli.log.warning("skipped %s: %s", s.utterance_id, s.reason)
        stats = manifest.summary(table, skipped, data.corpus)
        manifest.write_into(table, manifest_tmp)
        report_tmp.write_text(manifest.report_text(skipped, stats), encoding="utf-8")
        metrics_tmp.write_text(json.dumps(stats, indent=2) + "\n", encoding="utf-8")
    cli.log.info(
        "wrote %s (%d utterances, %d speakers, %.2f h), %s/, %s; skipped %d",
        manifest_path,
        stats["utterances"],
        stats["speakers"],
        stats["hours"],
        raw_dir,
        report_path,
        len(skipped),
    )


if __name__ == "__main__":
    cli.run(app)
