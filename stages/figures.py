"""figures stage: figures of the held-out codes (see vqspeech.report.plots for what each shows).

Reads data/codes, models/model.pt (the per-utterance panels' code distances and deconv
reconstruction), data/features, data/stats.json and the audio and TextGrids named in
data/manifest.parquet; writes plots/eval/ (heatmap, bigrams, UMAP, utterances and the tables
behind dvc.yaml's plots).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from vqspeech import cli

app = cli.app(__doc__)


@app.command()
def main(
    params_file: cli.ParamsFile = cli.PARAMS,
    codes_dir: cli.CodesDir = cli.CODES,
    model_path: cli.ModelFile = cli.MODEL,
    features_dir: cli.FeaturesDir = cli.FEATURES,
    stats_path: cli.StatsFile = cli.STATS,
    manifest_path: cli.ManifestFile = cli.MANIFEST,
    out_dir: Annotated[Path, cli.opt("--out", "Folder of figures to write.")] = Path("plots/eval"),
) -> None:
    """Draw the evaluation figures."""
    from vqspeech.data import manifest
    from vqspeech.evaluate.codes import Latents, read_codebook, read_frames
    from vqspeech.features import shards
    from vqspeech.features.stats import Normalizer
    from vqspeech.io import atomic
    from vqspeech.model.checkpoint import load_model
    from vqspeech.report import figures

    with cli.stage("figures", params_file, out_dir) as params:
        cfg = params.eval.plots
        layout = read_frames(codes_dir)  # the frame table; latents read a batch at a time
        frames, codebook = layout.frames, read_codebook(codes_dir)

        def latents(rows: int = 16_384):
            reader = Latents(codes_dir, rows)
            for start in range(0, len(frames), rows):
                yield reader.next(min(rows, len(frames) - start))

        model, _ = load_model(model_path, input_dim=shards.dim(features_dir))
        norm = Normalizer.load(stats_path)
        table = manifest.read(manifest_path)
        paths, grids = manifest.by_id(table, "path"), manifest.by_id(table, "textgrid")

        def panels_of(ids: list[str], order: list[int]) -> list:
            wanted = set(ids)
            utts = {
                u.utterance_id: u
                for u in shards.iter_utterances(features_dir, params.eval.split)
                if u.utterance_id in wanted
            }
            return figures.utterance_panels(model, utts, norm, paths, grids, ids, order)

        with atomic.atomic_dir(out_dir) as tmp:
            figures.draw(
                tmp,
                frames,
                latents,
                codebook,
                panels_of,
                utterances=cfg.utterances,
                umap_points=cfg.umap_points,
                seconds=cfg.seconds,
                seed=params.train.seed,
            )
        cli.log.info(
            "read %s (%d frames), %s; wrote %s/ (%s)",
            codes_dir,
            len(frames),
            model_path,
            out_dir,
            ", ".join(sorted(p.name for p in out_dir.iterdir())),
        )


if __name__ == "__main__":
    cli.run(app)
