"""Benchmark alignment extraction, evaluation and figures on the default corpus (target:
align + evaluate under 2 minutes on 2 cores, UMAP included).

Runs the align, evaluate and figures stages, each in a fresh process (so import and numba
compile times count), in a scratch folder that reads the repository's data/ and models/ (run
`dvc repro figures` first) and writes its own outputs. Also times the ABX part alone, per
representation, in-process. Writes its section of docs/benchmarks.md.
Usage: python benchmarks/evaluate.py
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import typer
from benchlib import REPO, run_stage, stamp, table, update_section

from vqspeech.evaluate import abx
from vqspeech.evaluate.codes import layout_of, read_codes, read_intervals

LINKED = ("data/features", "data/stats.json", "data/manifest.parquet", "data/raw", "models")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "data").mkdir()
        for name in LINKED:
            (work / name).symlink_to(REPO / name)
        shutil.copy(REPO / "params.yaml", work / "params.yaml")
        rows, total = [], 0.0
        for stage in ("align", "evaluate", "figures"):
            wall, rss = run_stage(stage, work)
            total += wall
            rows.append([stage, f"{wall:.1f} s", f"{rss:.0f} MiB"])
            print(stage, f"{wall:.1f} s", f"{rss:.0f} MiB", flush=True)
        rows.append(["**total**", f"**{total:.1f} s**", ""])
        frames, latents, codebook = read_codes(work / "data/codes")
        layout = layout_of(frames)
        items = abx.capped_items(
            read_intervals(work / "data/codes"), layout.ids, layout.counts, 2, 10, 0
        )
        abx_rows = []
        for name, distance in (
            ("latents", abx.angular(latents)),
            ("code vectors", abx.angular_codes(frames["code"].to_numpy(), codebook)),
        ):
            start = time.perf_counter()
            result = abx.abx(items, distance, max_x_across=5, seed=0)
            abx_rows.append(
                [
                    name,
                    f"{time.perf_counter() - start:.1f} s",
                    f"{100 * result.within:.2f} / {100 * result.across:.2f}",
                ]
            )
        report = json.loads((work / "data/align_report.json").read_text())
    body = f"""## align + evaluate + figures (default corpus, `eval.split` = test)

{stamp()} {report["utterances"]} held-out utterances, {report["frames"]} latents of 20 ms
({report["frames"] * 0.02 / 60:.1f} min of speech). Each stage in a fresh process: import, numba
compile (UMAP, librosa) and k-means fit included.

{table(["stage", "wall", "peak RSS"], rows)}

ABX alone ({len(items)} triphone items, every pair in a context by batched DTW):

{table(["representation", "wall", "within / across error %"], abx_rows)}
"""
    update_section("evaluate", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
