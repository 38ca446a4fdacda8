"""evaluate stage: clustering and boundary metrics of the codes beside baselines, same frames.

Reads data/codes/codes.parquet, data/features and data/stats.json; writes metrics/eval.json with
`vqvae`, `kmeans_mfcc` and `random`, each on `all` frames and on `speech` frames, so
`dvc metrics show` puts them side by side. (ABX and the plots of issue 5 are still to come.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow.parquet as pq
import typer

from vqspeech import atomic, shards, stagelog
from vqspeech.evaluate import baseline_codes, fit_kmeans, rounded, score_system

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
log = stagelog.setup()
Opt = typer.Option


@app.command()
def main(
    params_file: Annotated[Path, Opt("--params")] = Path("params.yaml"),
    codes_path: Annotated[Path, Opt("--codes")] = Path("data/codes/codes.parquet"),
    features_dir: Annotated[Path, Opt("--features")] = Path("data/features"),
    stats_path: Annotated[Path, Opt("--stats")] = Path("data/stats.json"),
    metrics_path: Annotated[Path, Opt("--metrics")] = Path("metrics/eval.json"),
) -> None:
    """Score the VQ-VAE codes and the baselines."""
    params = stagelog.load_params_or_exit(log, params_file)
    k, seed = params.model.codebook_size, params.train.seed
    with stagelog.timed(log, "evaluate"), stagelog.exit_on_error(log):
        frames = pq.read_table(codes_path, columns=["utterance_id", "frame", "code", "phone"])
        frames = frames.to_pandas()
        stats = json.loads(stats_path.read_text())
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        km = fit_kmeans(shards.iter_utterances(features_dir, "train"), mean, std, k, seed)
        held_out = set(frames["utterance_id"])
        utts = (u for u in shards.iter_utterances(features_dir) if u.utterance_id in held_out)
        kmeans = baseline_codes(utts, km, mean, std)
        labels = frames.drop(columns="code")
        mfcc = labels.merge(kmeans, on=["utterance_id", "frame"], how="inner", validate="1:1")
        if len(mfcc) != len(frames):
            raise ValueError(f"k-means baseline covers {len(mfcc)} of {len(frames)} frames")
        rand = labels.assign(code=np.random.default_rng(seed).integers(0, k, len(labels)))
        result = {}
        for name, table in (("vqvae", frames), ("kmeans_mfcc", mfcc), ("random", rand)):
            result[name] = score_system(table)
            r = result[name]["all"]
            log.info("%s: NMI %.3f, PNMI %.3f, phone purity %.3f, boundary F1 %.3f",
                     name, r["nmi"], r["pnmi"], r["phone_purity"], r["boundary_f1"])  # fmt: skip
        atomic.write_text(metrics_path, json.dumps(rounded(result), indent=2) + "\n")
        log.info("read %s (%d frames); wrote %s", codes_path, len(frames), metrics_path)


if __name__ == "__main__":
    sys.exit(app())
