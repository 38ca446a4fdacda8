"""synthesize stage: resynthesis of every unit system on a CPU, and WaveNet's when it decodes.

Units (`synthesize.units`, `synthesis.run`): per system a unit-to-spectrogram decoder and
Griffin-Lim; held-out utterances resynthesized whole and converted, written as
data/synthesis/<system>/*.wav with plots/synthesis/index.html, scored in metrics/synthesis.json
`units`. WaveNet (model.decoder: wavenet): excerpts decoded as reconstructions and conversions
(data/synthesis/*.wav, plots/synthesis/spectrograms.png), scored by `synthesis.measures.score`
(null without WaveNet). docs/design.md "Synthesis".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from vqspeech import cli
from vqspeech.io.progress import progress

app = cli.app(__doc__)
WavDir = Annotated[Path, cli.opt("--wavs", "Folder of wavs to write.")]
PlotDir = Annotated[Path, cli.opt("--plots", "Folder of the figure.")]
MetricsOut = Annotated[Path, cli.opt("--metrics", "Synthesis metrics to write.")]
CodesDir = Annotated[Path, cli.opt("--codes", "align's folder (train latents of kmeans_latent).")]
ReportIn = Annotated[Path, cli.opt("--report", "evaluate's report (the systems it scored).")]
ManifestIn = Annotated[Path, cli.opt("--manifest", "The corpus manifest (transcripts).")]


@app.command()
def main(
    params_file: cli.ParamsFile = cli.PARAMS,
    model_path: cli.ModelFile = cli.MODEL,
    features_dir: cli.FeaturesDir = cli.FEATURES,
    stats_path: cli.StatsFile = cli.STATS,
    wav_dir: WavDir = Path("data/synthesis"),
    plot_dir: PlotDir = Path("plots/synthesis"),
    metrics_path: MetricsOut = Path("metrics/synthesis.json"),
    codes_dir: CodesDir = Path("data/codes"),
    report_path: ReportIn = Path("reports/eval.json"),
    manifest_path: ManifestIn = Path("data/manifest.parquet"),
) -> None:
    """Resynthesize and voice-convert held-out utterances; score them."""
    import numpy as np

    from vqspeech.evaluate import heldout
    from vqspeech.features import shards, stats
    from vqspeech.io import atomic
    from vqspeech.model.checkpoint import load_model
    from vqspeech.model.device import pick, set_threads
    from vqspeech.synthesis import excerpts as E
    from vqspeech.synthesis import generate, measures, run

    with cli.stage("synthesize", params_file, wav_dir, plot_dir, metrics_path) as params:
        p, seed, split = params.synthesize, params.train.seed, params.eval.split
        run.check_systems(p.units.systems, report_path)
        set_threads(params.train.threads)  # the decoders' weights depend on the thread count
        model, payload = load_model(model_path, input_dim=shards.dim(features_dir))
        model.to(pick(params.train.device)).eval()
        speakers: list[str] = list(payload["speakers"])
        held_out = heldout.index(features_dir, split).column("utterance_id").to_pylist()
        rng = np.random.default_rng([seed, 7])
        ids = E.choose_ids(held_out, p.utterances, rng)  # only these are read, and the picks
        reader = run.Reader(features_dir, audio=True)  # a pass over each split's shards
        run.announce_picks(reader, params, features_dir)
        loaded = reader(split, ids)
        chosen = [loaded[i] for i in ids]
        starts, n_lat = E.excerpts(chosen, p.seconds)
        n, decoder = n_lat * E.SAMPLES_PER_LATENT, model.cfg.decoder
        said = f"synthesizing {n / E.SR:.2f} s of {', '.join(ids)} with the {decoder} decoder"
        cli.log.info(f"read {features_dir}: {len(held_out)} {split} utterances; {said}")
        versions, speed = E.originals(chosen, starts, n), None
        goals = E.targets(speakers, len(chosen), p.targets, rng)
        if decoder == "wavenet":
            bar = progress(total=n_lat, desc="generate", unit="latent")
            norm = stats.Normalizer.load(stats_path)
            made, speed = generate.generate(
                model, chosen, starts, goals, speakers, n_lat, norm, seed, bar
            )
            bar.close()
            E.add_generated(versions, made, goals)
        else:
            cli.log.info("no WaveNet decoder: the originals only; synthesis metrics are null")
        fit, test = run.classifier_data(features_dir, p, n, rng, reader)
        speech = E.speech_masks(chosen, starts)
        classifier = measures.fitted_classifier(fit, seed)  # one fit for both scores
        metrics = measures.score(
            versions, speech, goals, fit, test, seed, decoder, n, speed, classifier
        )
        args = (features_dir, stats_path, codes_dir, manifest_path, fit, classifier, reader)
        units = run.run(params, model, speakers, *args)
        metrics["units"] = units[0]
        wavs = run.write_outputs(wav_dir, plot_dir, chosen, versions, units)
        atomic.write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
        cli.log.info(f"wrote {wav_dir} ({wavs} wavs), {plot_dir}, {metrics_path}")


if __name__ == "__main__":
    cli.run(app)
