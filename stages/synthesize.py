"""synthesize stage: resynthesis and voice conversion with the WaveNet decoder.

`synthesize.utterances` held-out utterances (`synthesize.seconds` from 0.1 s before the first
phone) decoded as a reconstruction (mean speaker embedding) and as conversions to
`synthesize.targets` training speakers. Writes data/synthesis/*.wav (16 kHz), the spectrograms in
plots/synthesis/ and metrics/synthesis.json (`synthesis.measures.score`: MCD beside the mu-law
floor, a speaker classifier's share of conversions given to their target; null without WaveNet).
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


@app.command()
def main(
    params_file: cli.ParamsFile = cli.PARAMS,
    model_path: cli.ModelFile = cli.MODEL,
    features_dir: cli.FeaturesDir = cli.FEATURES,
    stats_path: cli.StatsFile = cli.STATS,
    wav_dir: WavDir = Path("data/synthesis"),
    plot_dir: PlotDir = Path("plots/synthesis"),
    metrics_path: MetricsOut = Path("metrics/synthesis.json"),
) -> None:
    """Resynthesize and voice-convert held-out utterances; score them."""
    import numpy as np
    import soundfile as sf

    from vqspeech.evaluate import heldout
    from vqspeech.features import shards, stats
    from vqspeech.io import atomic
    from vqspeech.model.checkpoint import load_model
    from vqspeech.model.device import pick
    from vqspeech.synthesis import excerpts as E
    from vqspeech.synthesis import figure, generate, measures

    with cli.stage("synthesize", params_file, wav_dir, plot_dir, metrics_path) as params:
        p, seed, split = params.synthesize, params.train.seed, params.eval.split
        model, payload = load_model(model_path, input_dim=shards.dim(features_dir))
        model.to(pick(params.train.device)).eval()
        speakers: list[str] = list(payload["speakers"])
        held_out = heldout.index(features_dir, split).column("utterance_id").to_pylist()
        rng = np.random.default_rng([seed, 7])
        ids = E.choose_ids(held_out, p.utterances, rng)  # only these are read, and the picks
        loaded = heldout.read_utterances(features_dir, ids, split, audio=True)
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
        train = heldout.index(features_dir, "train")
        speaker_of = dict(
            zip(*(train.column(c).to_pylist() for c in ("utterance_id", "speaker")), strict=True)
        )
        read = lambda ids: heldout.read_utterances(features_dir, ids, "train", audio=True)  # noqa: E731
        fit, test = measures.classifier_excerpts(
            speaker_of, read, p.classifier_utterances, p.classifier_holdout, n, rng
        )
        speech = E.speech_masks(chosen, starts)
        metrics = measures.score(versions, speech, goals, fit, test, seed, decoder, n, speed)
        with atomic.atomic_dir(wav_dir) as tmp:
            for u, vs in zip(chosen, versions, strict=True):
                for name, audio in vs:
                    path = tmp / f"{u.utterance_id}_{name.replace('as ', 'as_')}.wav"
                    sf.write(str(path), audio, E.SR, subtype="PCM_16")
        with atomic.atomic_dir(plot_dir) as tmp:
            rows = [(u.utterance_id, vs) for u, vs in zip(chosen, versions, strict=True)]
            figure.spectrogram_figure(rows, tmp / "spectrograms.png")
        atomic.write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
        wavs = sum(len(v) for v in versions)
        cli.log.info(f"wrote {wav_dir} ({wavs} wavs), {plot_dir}/spectrograms.png, {metrics_path}")


if __name__ == "__main__":
    cli.run(app)
