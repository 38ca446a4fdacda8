"""align stage: codes and latents for every frame of the held-out split, joined with the phones.

Reads models/model.pt, data/stats.json, data/features (split `eval.split`) and the TextGrids
named in data/manifest.parquet. Writes data/codes/codes.parquet (utterance_id, speaker, frame,
code, phone, latent; one row per 20 ms latent), data/codes/codebook.parquet (code, vector) and
data/align_report.json (counts, and every frame found on one side of the join only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow.parquet as pq
import torch
import typer

from vqspeech import atomic, manifest, shards, stagelog
from vqspeech.align import align, codebook_table
from vqspeech.training import load_model

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
log = stagelog.setup()
Opt = typer.Option


@app.command()
def main(
    params_file: Annotated[Path, Opt("--params")] = Path("params.yaml"),
    model_path: Annotated[Path, Opt("--model")] = Path("models/model.pt"),
    features_dir: Annotated[Path, Opt("--features")] = Path("data/features"),
    stats_path: Annotated[Path, Opt("--stats")] = Path("data/stats.json"),
    manifest_path: Annotated[Path, Opt("--manifest")] = Path("data/manifest.parquet"),
    out_dir: Annotated[Path, Opt("--out")] = Path("data/codes"),
    report_path: Annotated[Path, Opt("--report")] = Path("data/align_report.json"),
) -> None:
    """Encode the held-out utterances and join their codes with ground-truth phones."""
    params = stagelog.load_params_or_exit(log, params_file)
    atomic.remove_stale(out_dir, report_path)
    split = params.eval.split
    with stagelog.timed(log, f"align ({split})"), stagelog.exit_on_error(log):
        model, _ = load_model(model_path)
        stats = json.loads(stats_path.read_text())
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        utts = list(shards.iter_utterances(features_dir, split))
        if not utts:
            raise ValueError(f"{features_dir}: no {split!r} utterances")
        grids = dict(zip(*(manifest.read(manifest_path).column(c).to_pylist()
                           for c in ("utterance_id", "textgrid")), strict=True))  # fmt: skip
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

        def bar(it, total):
            return stagelog.progress(it, total=total, desc="encode", unit="utt")

        table, report = align(model, utts, grids, mean, std, device, params.eval.batch_size, bar)
        for what, missing in (
            ("codes only", report.only_codes),
            ("labels only", report.only_labels),
        ):
            for utt, count in missing.items():
                log.warning("%s: %d frames with %s (not joined)", utt, count, what)
        codebook = model.quantizer.codebook.detach().float().cpu().numpy()
        with atomic.atomic_dir(out_dir) as tmp:
            pq.write_table(table, tmp / "codes.parquet", compression="zstd")
            pq.write_table(codebook_table(codebook), tmp / "codebook.parquet")
        summary = {
            "split": split, "utterances": len(utts), "frames": report.frames,
            "codes_used": len(set(table.column("code").to_pylist())),
            "frames_only_codes": sum(report.only_codes.values()),
            "frames_only_labels": sum(report.only_labels.values()),
            "only_codes": report.only_codes, "only_labels": report.only_labels,
        }  # fmt: skip
        atomic.write_text(report_path, json.dumps(summary, indent=2) + "\n")
        log.info("read %d %s utterances; wrote %s (%d frames of 20 ms), %s",
                 len(utts), split, out_dir, report.frames, report_path)  # fmt: skip


if __name__ == "__main__":
    sys.exit(app())
