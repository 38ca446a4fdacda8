"""Benchmark the features stage end to end (decode, resample, MFCC39, Parquet write).

Cases, each a fresh process in a scratch folder reading the built-in corpus from data/raw
(run `dvc repro download` first):
- builtin: the default corpus as it is (16 kHz wav);
- 48 kHz: the same audio upsampled to 48 kHz FLAC, so the stage decodes FLAC and resamples;
- builtin x10: the manifest repeated ten times (new ids, same files), to show that peak memory
  follows the shard size, not the corpus size.
Writes its section of docs/benchmarks.md. Usage: python benchmarks/features.py [--jobs N]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import soundfile as sf
import soxr
import typer
import yaml
from benchlib import REPO, run_stage, stamp, table, update_section

from vqspeech.data import manifest


def scratch(work: Path, params: dict, table_: pa.Table) -> None:
    (work / "data").mkdir(parents=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    manifest.write(table_.cast(manifest.SCHEMA), work / "data/manifest.parquet")


def to_48k(table_: pa.Table, root: Path) -> pa.Table:
    paths = []
    for path in table_.column("path").to_pylist():
        y, sr = sf.read(REPO / path, dtype="float32")
        out = root / Path(path).with_suffix(".flac").name
        sf.write(str(out), soxr.resample(y, sr, 48000), 48000, format="FLAC")
        paths.append(str(out))
    table_ = table_.set_column(2, "path", pa.array(paths))
    return table_.set_column(5, "sample_rate", pa.array([48000] * len(paths), pa.int32()))


def repeat(table_: pa.Table, times: int) -> pa.Table:
    parts = []
    for i in range(times):
        ids = pc.binary_join_element_wise(table_.column("utterance_id"), f"r{i}", "_")
        parts.append(table_.set_column(0, "utterance_id", ids))
    return pa.concat_tables(parts)


def main(jobs: int = 0) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["features"]["jobs"] = jobs
    base = manifest.read(REPO / "data/manifest.parquet")
    absolute = base.set_column(
        2, "path", pa.array([str(REPO / p) for p in base.column("path").to_pylist()])
    ).set_column(
        3, "textgrid", pa.array([str(REPO / p) for p in base.column("textgrid").to_pylist()])
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "flac48").mkdir()
        cases = [
            ("builtin (16 kHz wav)", absolute),
            ("builtin at 48 kHz (FLAC, resampled)", to_48k(absolute, tmp / "flac48")),
            ("builtin x10 (16 kHz wav)", repeat(absolute, 10)),
        ]
        for i, (name, table_) in enumerate(cases):
            work = tmp / f"case{i}"
            scratch(work, params, table_)
            wall, peak = run_stage("features", work)
            report = json.loads((work / "data/features_report.json").read_text())
            audio = report["hours"] * 3600
            rows.append(
                [
                    name,
                    f"{report['hours']:.2f} h",
                    report["shards"],
                    f"{wall:.1f} s",
                    f"{audio / wall:.0f}x",
                    f"{peak:.0f} MiB",
                ]
            )
            print(rows[-1], flush=True)
    header = ["input", "audio", "shards", "wall", "x real time", "peak RSS"]
    body = "\n".join(
        [
            "## features (MFCC39, end to end)",
            "",
            table(header, rows),
            "",
            f"{stamp()} jobs={jobs or 'all cores'}; shard_mb={params['features']['shard_mb']}.",
            "Wall time is the whole stage in a fresh process: Python start, imports and the",
            "one-time librosa warm-up (about 3 s) included, so longer corpora run nearer the",
            "steady-state rate. Target: at least 1000x real time on 2 cores for 16 kHz",
            "input; peak memory flat as the corpus grows 10x.",
        ]
    )
    update_section("features", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
