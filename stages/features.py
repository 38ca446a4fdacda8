"""features stage: manifest -> speaker-disjoint split -> MFCC39 (or logmel/fbank) Parquet shards.

Writes data/features/part-*.parquet (schema in vqspeech.features.shards) and
data/features_report.json (feature config, counts, the speaker -> split map, every skipped
utterance and why, every file whose float samples went beyond full scale and were scaled down).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from vqspeech import cli

app = cli.app(__doc__)


@app.command()
def main(
    params_file: cli.ParamsFile = cli.PARAMS,
    manifest_path: cli.ManifestFile = cli.MANIFEST,
    out_dir: Annotated[Path, cli.opt("--out", "Feature shards to write.")] = cli.FEATURES,
    report_path: Annotated[Path, cli.opt("--report", "Features report to write.")] = Path(
        "data/features_report.json"
    ),
) -> None:
    """Compute features and frame labels for every utterance of the manifest."""
    from vqspeech.data import builtin, manifest
    from vqspeech.features import extract, split
    from vqspeech.features.acoustic import FeatureConfig
    from vqspeech.io import atomic
    from vqspeech.io.skips import enforce

    with cli.stage("features", params_file, out_dir, report_path) as params:
        f = params.features
        jobs = cli.jobs(f.jobs)
        cfg = FeatureConfig.from_params(f)
        cli.log.info("%s features, %d dims, %d jobs", cfg.kind, cfg.dim, jobs)
        table = manifest.read(manifest_path)
        speakers = table.column("speaker").to_pylist()
        own = builtin.held_out(params.data.builtin) if params.data.corpus == "builtin" else None
        val, test = split.held_out(f.split, own)
        split_of = split.assign(speakers, val, test)
        rows = extract.rows(table, split_of)
        cli.log.info("read %s: %d utterances, %d speakers", manifest_path, len(rows), len(split_of))
        with atomic.atomic_dir(out_dir) as tmp:
            report = extract.export(rows, tmp, cfg, f, params.data.duration_tolerance_s, jobs)
            verb = "skipped" if f.on_error == "skip" else "bad"
            for s in report.skipped:
                cli.log.warning("%s %s: %s", verb, s.utterance_id, s.reason)
            enforce(report.skipped, f.on_error, "features.on_error")
            for r in report.rescaled:
                cli.log.warning(
                    "%s: float samples reach %.3g, beyond full scale: scaled down to "
                    "it, not clipped",
                    r["path"],
                    r["peak"],
                )
            if report.utterances == 0:
                raise ValueError("no utterance produced features")
        summary = report.as_dict(cfg, f, split_of)
        atomic.write_text(report_path, json.dumps(summary, indent=2) + "\n")
        cli.log.info(
            "wrote %s (%d shards, %d utterances, %d frames, %.2f h of audio), %s; skipped %d",
            out_dir,
            report.shards,
            report.utterances,
            report.frames,
            report.seconds / 3600,
            report_path,
            len(report.skipped),
        )


if __name__ == "__main__":
    cli.run(app)
