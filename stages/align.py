"""align stage: codes and latents for every frame of the held-out split, joined with the phones.

Reads models/model.pt, data/stats.json, data/features (split `eval.split`) and the TextGrids
named in data/manifest.parquet; writes data/codes/ (codes.parquet: one row per 20 ms latent with
utterance_id, speaker, frame, code, phone, latent; codebook.parquet; phones.parquet: every
phone interval of those utterances, in the same utterance order, which ABX takes its items from;
train_latents.parquet: a seeded sample of `eval.train_latents` train latents, for k-means on
latents) and data/align_report.json (frames present on one side of the join only, per
utterance). The split is read, encoded and written a feature shard at a time: rows are grouped by
utterance in the features' order (utterance_id order for the features stage's shards), frames in
order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from vqspeech import cli
from vqspeech.io.progress import progress

app = cli.app(__doc__)
CodesDir = Annotated[Path, cli.opt("--out", "Codes folder to write.")]
ReportOut = Annotated[Path, cli.opt("--report", "Join report to write.")]


@app.command()
def main(
    params_file: cli.ParamsFile = cli.PARAMS,
    model_path: cli.ModelFile = cli.MODEL,
    features_dir: cli.FeaturesDir = cli.FEATURES,
    stats_path: cli.StatsFile = cli.STATS,
    manifest_path: cli.ManifestFile = cli.MANIFEST,
    out_dir: CodesDir = Path("data/codes"),
    report_path: ReportOut = Path("data/align_report.json"),
) -> None:
    """Encode the held-out utterances and join their codes with ground-truth phones."""
    from vqspeech.data import manifest
    from vqspeech.evaluate import codes, encode, heldout
    from vqspeech.features import shards, stats
    from vqspeech.io import atomic
    from vqspeech.model.checkpoint import load_model
    from vqspeech.model.device import pick

    with cli.stage("align", params_file, out_dir, report_path) as params:
        split, batch_size = params.eval.split, params.eval.batch_size
        cli.log.info("split %s", split)
        model, _ = load_model(model_path, input_dim=shards.dim(features_dir))
        norm = stats.Normalizer.load(stats_path)
        index = heldout.index(features_dir, split)
        if not index.num_rows:
            raise ValueError(f"{features_dir}: no {split!r} utterances")
        lengths = (index.column(c).to_pylist() for c in ("utterance_id", "n_frames"))
        alone = encode.solo(zip(*lengths, strict=True), batch_size)
        grids = manifest.by_id(manifest.read(manifest_path), "textgrid")
        device = pick(params.train.device)  # as training
        codebook = model.quantizer.codebook.detach().float().cpu().numpy()
        bar = progress(total=index.num_rows, desc="encode", unit="utt")
        with atomic.atomic_dir(out_dir) as tmp:
            writer = codes.CodesWriter(tmp, codebook)
            for shard in shards.iter_shards(features_dir, split):  # one shard in memory
                aligned = encode.coded_shard(
                    model, shard, grids, norm, device, batch_size, alone=alone
                )
                writer.add(aligned, len(shard))
                bar.update(len(shard))
            writer.close()
            bar.close()
            report = writer.report
            for what, missing in (("codes", report.only_codes), ("labels", report.only_labels)):
                for utt, count in missing.items():
                    cli.log.warning("%s: %d frames with %s only (not joined)", utt, count, what)
            if params.eval.train_latents:
                with cli.timed("train latents"):
                    train = shards.iter_shards(features_dir, "train")
                    train_latents, n_train = encode.train_latent_sample(
                        model,
                        train,
                        norm,
                        device,
                        batch_size,
                        params.eval.train_latents,
                        params.train.seed,
                    )
                cli.log.info(f"kept {len(train_latents)} latents of {n_train} train utterances")
                codes.write_train_latents(tmp, train_latents)
        summary = codes.summary(split, writer.utterances, len(writer.used), report)
        atomic.write_text(report_path, json.dumps(summary, indent=2) + "\n")
        wrote = f"{out_dir} ({report.frames} frames of 20 ms), {report_path}"
        cli.log.info(
            f"read {writer.utterances} {split} utterances a shard at a time; wrote {wrote}"
        )


if __name__ == "__main__":
    cli.run(app)
