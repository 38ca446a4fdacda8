"""stats stage: normalization statistics (train split only) and a description of the dataset.

Reads data/features/ shard by shard. Writes data/stats.json (per-dimension mean/std over train
frames), metrics/dataset.json, plots/phone_frequency.json and plots/feature_stats.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from vqspeech import atomic, shards, stagelog
from vqspeech.features import FeatureConfig
from vqspeech.stats import DatasetSummary, Moments

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
log = stagelog.setup()
STD_FLOOR = 1e-5


@app.command()
def main(
    params_file: Annotated[Path, typer.Option("--params")] = Path("params.yaml"),
    features_dir: Annotated[Path, typer.Option("--features")] = Path("data/features"),
    stats_path: Annotated[Path, typer.Option("--stats")] = Path("data/stats.json"),
    metrics_path: Annotated[Path, typer.Option("--metrics")] = Path("metrics/dataset.json"),
    plots_dir: Annotated[Path, typer.Option("--plots")] = Path("plots"),
) -> None:
    """Compute train-split normalization statistics and dataset metrics."""
    params = stagelog.load_params_or_exit(log, params_file)
    phone_plot, stats_plot = plots_dir / "phone_frequency.json", plots_dir / "feature_stats.json"
    atomic.remove_stale(stats_path, metrics_path, phone_plot, stats_plot)
    hop_s = FeatureConfig().hop_s
    with stagelog.timed(log, "stats"), stagelog.exit_on_error(log):
        files = shards.files(features_dir)
        summary = DatasetSummary(hop_s, params.stats.window_frames)
        moments: dict[str, Moments] = {}
        for path in stagelog.progress(files, desc="shards", unit="shard"):
            for utt in shards.utterances_of(shards.read(path, shards.FRAME_COLUMNS)):
                moments.setdefault(utt.split, Moments(utt.features.shape[1])).update(utt.features)
                summary.add(utt)
        if "train" not in moments:
            raise ValueError(f"{features_dir}: no train utterances")
        train = moments["train"]
        std = np.maximum(train.std, STD_FLOOR)
        for d in np.flatnonzero(train.std < STD_FLOOR):
            log.warning(
                "dimension %d has std %.2g over train frames; floored at %g",
                d,
                train.std[d],
                STD_FLOOR,
            )
        stats = {
            "frames": train.n,
            "dim": train.dim,
            "mean": train.mean.tolist(),
            "std": std.tolist(),
        }
        atomic.write_text(stats_path, json.dumps(stats, indent=1) + "\n")
        atomic.write_text(metrics_path, json.dumps(summary.as_dict(), indent=2) + "\n")
        atomic.write_text(phone_plot, json.dumps(summary.phone_rows(), indent=1) + "\n")
        rows = feature_rows(moments, train.mean, std)
        atomic.write_text(stats_plot, json.dumps(rows, indent=1) + "\n")
        log.info(
            "read %d shards (%d train frames); wrote %s, %s, %s/phone_frequency.json, "
            "%s/feature_stats.json", len(files), train.n, stats_path, metrics_path, plots_dir,
            plots_dir,
        )  # fmt: skip


def feature_rows(
    moments: dict[str, Moments], mean: np.ndarray, std: np.ndarray
) -> list[dict[str, float]]:
    """Per dimension: raw train mean/std, and each split's mean/std after train normalization."""
    rows = []
    for d in range(len(mean)):
        row: dict[str, float] = {"dimension": d, "raw_mean": mean[d], "raw_std": std[d]}
        for split, m in sorted(moments.items()):
            row[f"{split}_norm_mean"] = (m.mean[d] - mean[d]) / std[d]
            row[f"{split}_norm_std"] = m.std[d] / std[d]
        rows.append({k: round(float(v), 5) if k != "dimension" else v for k, v in row.items()})
    return rows


if __name__ == "__main__":
    sys.exit(app())
