"""features stage: manifest -> speaker-disjoint split -> MFCC39 (or logmel/fbank) Parquet shards.

Writes data/features/part-*.parquet (schema in vqspeech.shards) and data/features_report.json
(feature config, counts, the speaker -> split map, every skipped utterance and why).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from vqspeech import atomic, export, manifest, split, stagelog
from vqspeech.features import DEFAULT_MELS, FeatureConfig
from vqspeech.skips import enforce

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
log = stagelog.setup()


@app.command()
def main(
    params_file: Annotated[Path, typer.Option("--params")] = Path("params.yaml"),
    manifest_path: Annotated[Path, typer.Option("--manifest")] = Path("data/manifest.parquet"),
    out_dir: Annotated[Path, typer.Option("--out")] = Path("data/features"),
    report_path: Annotated[Path, typer.Option("--report")] = Path("data/features_report.json"),
) -> None:
    """Compute features and frame labels for every utterance of the manifest."""
    params = stagelog.load_params_or_exit(log, params_file)
    f = params.features
    jobs = stagelog.jobs(f.jobs)
    cfg = FeatureConfig(
        kind=f.kind, n_mels=f.n_mels or DEFAULT_MELS[f.kind], preemphasis=f.preemphasis
    )
    opts = export.AudioOptions(
        f.trim_silence,
        f.trim_margin_s,
        f.allow_upsampling,
        params.data.duration_tolerance_s,
        f.audio,
    )
    with stagelog.timed(log, f"features ({cfg.kind}, {cfg.dim} dims, {jobs} jobs)"):
        with stagelog.exit_on_error(log):
            atomic.remove_stale(out_dir, report_path)
            table = manifest.read(manifest_path)
            if not f.split.test_speakers:
                raise split.SplitError(
                    "features.split.test_speakers is empty: name held-out speakers"
                )
            split_of = split.assign(
                table.column("speaker").to_pylist(), f.split.val_speakers, f.split.test_speakers
            )
            rows = export.rows(table, split_of)
            log.info("read %s: %d utterances, %d speakers", manifest_path, len(rows), len(split_of))
            with atomic.atomic_dir(out_dir) as tmp:
                report = export.export(rows, tmp, cfg, opts, f.shard_mb, jobs)
                verb = "skipped" if f.on_error == "skip" else "bad"
                for s in report.skipped:
                    log.warning("%s %s: %s", verb, s.utterance_id, s.reason)
                enforce(report.skipped, f.on_error, "features.on_error")
                if report.utterances == 0:
                    raise ValueError("no utterance produced features")
        summary = {
            "kind": cfg.kind,
            "dim": cfg.dim,
            "sample_rate": cfg.sample_rate,
            "hop_s": cfg.hop_s,
            "win_s": cfg.win_s,
            "audio": f.audio,
            "utterances": report.utterances,
            "frames": report.frames,
            "hours": round(report.seconds / 3600, 4),
            "shards": report.shards,
            "downmixed": report.downmixed,
            "resampled": report.resampled,
            "speaker_split": split_of,
            "skipped": len(report.skipped),
            "skipped_utterances": [s.__dict__ for s in report.skipped],
        }
        atomic.write_text(report_path, json.dumps(summary, indent=2) + "\n")
        log.info(
            "wrote %s (%d shards, %d utterances, %d frames, %.2f h of audio), %s; skipped %d",
            out_dir, report.shards, report.utterances, report.frames, report.seconds / 3600,
            report_path, len(report.skipped),
        )  # fmt: skip


if __name__ == "__main__":
    sys.exit(app())
