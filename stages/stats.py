"""stats stage: normalization statistics (train split only) and a description of the dataset.

Reads data/features/ shard by shard. Writes data/stats.json (per-dimension mean/std over train
frames: `vqspeech.features.stats.Normalizer`), metrics/dataset.json, plots/phone_frequency.json
and plots/feature_stats.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from vqspeech import cli
from vqspeech.io.progress import progress

app = cli.app(__doc__)


@app.command()
def main(
    params_file: cli.ParamsFile = cli.PARAMS,
    features_dir: cli.FeaturesDir = cli.FEATURES,
    stats_path: Annotated[Path, cli.opt("--stats", "Normalization statistics to write.")] = Path(
        "data/stats.json"
    ),
    metrics_path: Annotated[Path, cli.opt("--metrics", "Dataset metrics to write.")] = Path(
        "metrics/dataset.json"
    ),
    plots_dir: Annotated[Path, cli.opt("--plots", "Folder of the two plot tables.")] = Path(
        "plots"
    ),
    report_path: Annotated[Path, cli.opt("--report", "Full dataset description.")] = Path(
        "reports/dataset.json"
    ),
) -> None:
    """Compute train-split normalization statistics and dataset metrics."""
    from vqspeech.features import shards
    from vqspeech.features.stats import DatasetSummary, Normalizer, accumulate, feature_rows
    from vqspeech.io import atomic

    phone_plot, stats_plot = plots_dir / "phone_frequency.json", plots_dir / "feature_stats.json"
    outputs = (stats_path, metrics_path, report_path, phone_plot, stats_plot)
    with cli.stage("stats", params_file, *outputs) as params:
        files = shards.files(features_dir)
        summary = DatasetSummary(shards.HOP_S, params.stats.window_frames)
        utterances = shards.checked(progress(files, desc="shards", unit="shard"))
        moments = accumulate(utterances, summary)
        if "train" not in moments:
            raise ValueError(f"{features_dir}: no train utterances")
        norm = Normalizer.from_moments(moments["train"])
        for d in (norm.std > moments["train"].std).nonzero()[0]:
            cli.log.warning(
                "dimension %d has std %.2g over train frames; floored at %g",
                d,
                moments["train"].std[d],
                norm.std[d],
            )
        atomic.write_text(stats_path, norm.to_json())
        full = summary.as_dict()
        atomic.write_text(report_path, json.dumps(full, indent=2) + "\n")
        atomic.write_text(metrics_path, json.dumps(summary.headline(full), indent=2) + "\n")
        atomic.write_text(phone_plot, json.dumps(summary.phone_rows(), indent=1) + "\n")
        atomic.write_text(stats_plot, json.dumps(feature_rows(moments, norm), indent=1) + "\n")
        cli.log.info(
            "read %d shards (%d train frames); wrote %s",
            len(files),
            norm.frames,
            ", ".join(map(str, outputs)),
        )


if __name__ == "__main__":
    cli.run(app)
