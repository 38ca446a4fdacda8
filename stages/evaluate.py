"""evaluate stage: clustering, boundary and ABX scores of the codes beside baselines, same frames.

Reads data/codes (codes, latents, codebook), data/features and data/stats.json; writes
reports/eval.json, every metric of every system on all and on speech frames, and
metrics/eval.json, the headline numbers `dvc metrics show` puts side by side (systems:
`vqvae`, `kmeans_mfcc`, `kmeans_latent`, each re-segmented (`_dpdp`), `kmeans_mfcc_matched`
(k-means on MFCC at the learned codes' perplexity), `mfcc`, `random`; see
vqspeech.evaluate.evaluator).
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
    codes_dir: cli.CodesDir = cli.CODES,
    features_dir: cli.FeaturesDir = cli.FEATURES,
    stats_path: cli.StatsFile = cli.STATS,
    metrics_path: Annotated[Path, cli.opt("--metrics", "Headline metrics to write.")] = Path(
        "metrics/eval.json"
    ),
    report_path: Annotated[Path, cli.opt("--report", "Every metric (not a DVC metric).")] = Path(
        "reports/eval.json"
    ),
) -> None:
    """Score the VQ-VAE codes and the baselines."""
    from vqspeech.evaluate import evaluator, kmeans, scoring
    from vqspeech.evaluate.codes import (
        read_codebook,
        read_frames,
        read_intervals,
        read_train_latents,
    )
    from vqspeech.evaluate.heldout import CodedSplit
    from vqspeech.features import shards
    from vqspeech.features.stats import Normalizer
    from vqspeech.io import atomic

    with cli.stage("evaluate", params_file, metrics_path, report_path) as params:
        ev = params.eval
        layout = read_frames(codes_dir)  # the frame table; vectors are read a shard at a time
        codebook = read_codebook(codes_dir)
        intervals = read_intervals(codes_dir)
        train_latents = read_train_latents(codes_dir)
        if ev.train_latents and train_latents is None:
            raise ValueError(
                f"{codes_dir}: no train_latents.parquet, but eval.train_latents is "
                f"{ev.train_latents} (rerun the align stage)"
            )
        norm = Normalizer.load(stats_path)
        k, seed = len(codebook), params.train.seed
        with cli.timed("k-means baseline"):
            train_mfcc = kmeans.train_frames(
                shards.iter_utterances(features_dir, "train"), norm, seed
            )
            km = kmeans.kmeans(train_mfcc, k, seed)
        held = CodedSplit(layout, codes_dir, features_dir, ev.split, norm)
        with atomic.scratch_dir(report_path) as scratch:  # the ABX items' frames, on disk
            result = evaluator.evaluate(
                held,
                codebook,
                km,
                ev,
                intervals=intervals,
                seed=seed,
                scratch=scratch,
                train_latents=train_latents,
                train_mfcc=train_mfcc,
            )
        atomic.write_text(report_path, json.dumps(result, indent=2) + "\n")
        atomic.write_text(metrics_path, json.dumps(scoring.headline(result), indent=2) + "\n")
        cli.log.info(
            "read %s (%d frames, %d utterances) and the %s split of %s a shard at a "
            "time; wrote %s, %s",
            codes_dir,
            len(layout.frames),
            len(layout.ids),
            ev.split,
            features_dir,
            metrics_path,
            report_path,
        )


if __name__ == "__main__":
    cli.run(app)
