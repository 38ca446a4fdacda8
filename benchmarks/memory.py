"""Benchmark peak memory of every stage from features on at 1x and 10x the default corpus.

The 10x corpus is the default manifest repeated ten times (new utterance ids, the same audio and
TextGrids, as in benchmarks/features.py), run through the features and stats stages: ten times
the train, val and test utterances of the same speakers. In a scratch folder per size, each
stage runs in a fresh process (benchlib.run_stage: its peak RSS, workers included) with the
repository's params except `train.epochs` = 1 (one epoch streams every window of the train split
once; the data path is the same every epoch). Writes its section of docs/benchmarks.md.
Usage: python benchmarks/memory.py [--epochs N]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import typer
import yaml
from benchlib import REPO, run_stage, stamp, table, update_section
from features import repeat

from vqspeech.data import manifest

STAGES = ("features", "stats", "train", "align", "evaluate", "figures", "synthesize")


def main(epochs: int = 1, write: bool = True) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train"]["epochs"] = epochs
    base = manifest.read(REPO / "data/manifest.parquet")
    absolute = base
    for i, column in ((2, "path"), (3, "textgrid")):
        paths = [str(REPO / p) for p in absolute.column(column).to_pylist()]
        absolute = absolute.set_column(i, column, pa.array(paths))
    results: dict[int, dict[str, tuple[float, float]]] = {}
    info: dict[int, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for times in (1, 10):
            work = Path(tmp) / f"x{times}"
            (work / "data").mkdir(parents=True)
            (work / "params.yaml").write_text(yaml.safe_dump(params))
            table_ = absolute if times == 1 else repeat(absolute, times)
            manifest.write(table_.cast(manifest.SCHEMA), work / "data/manifest.parquet")
            results[times] = {}
            for stage in STAGES:
                args = ("run",) if stage == "train" else ()
                results[times][stage] = run_stage(stage, work, *args)
                print(times, stage, results[times][stage], flush=True)
            dataset = json.loads((work / "metrics/dataset.json").read_text())
            report = json.loads((work / "data/align_report.json").read_text())
            hours = table_.column("duration_s").to_numpy().sum() / 3600
            info[times] = {
                "hours": hours,
                "train_frames": dataset.get("train_frames"),
                "held_out": report["utterances"],
                "latents": report["frames"],
            }
    rows = []
    for stage in STAGES:
        (w1, m1), (w10, m10) = results[1][stage], results[10][stage]
        rows.append(
            [
                stage,
                f"{w1:.1f} s",
                f"{m1:.0f} MiB",
                f"{w10:.1f} s",
                f"{m10:.0f} MiB",
                f"{m10 / m1:.2f}x",
            ]
        )
    header = ["stage", "1x wall", "1x peak RSS", "10x wall", "10x peak RSS", "10x / 1x memory"]
    body = "\n".join(
        [
            "## memory at 1x and 10x the corpus (features through synthesize)",
            "",
            table(header, rows),
            "",
            f"{stamp()} 1x: {info[1]['hours']:.2f} h, {info[1]['held_out']} held-out utterances "
            f"({info[1]['latents']} latents); 10x: {info[10]['hours']:.2f} h, "
            f"{info[10]['held_out']} held-out utterances ({info[10]['latents']} latents). "
            f"train.epochs = {epochs}, train.buffer_mb = {params['train']['buffer_mb']}, "
            f"eval.train_latents = {params['eval']['train_latents']}; every other param as in "
            "params.yaml. Each stage in a fresh process; peak RSS of the stage or its largest "
            "worker.",
        ]
    )
    if write:
        update_section("memory", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
