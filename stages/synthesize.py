"""synthesize stage: resynthesis and voice conversion with the WaveNet decoder.

For `synthesize.utterances` held-out (`eval.split`) utterances, `synthesize.seconds` from 0.1 s
before the first phone are encoded, quantized and decoded sample by sample twice over: as a
reconstruction (the held-out speaker is unseen, so with the mean speaker embedding, as
everywhere) and as voice conversions (same codes, `synthesize.targets` training speakers'
embeddings).

Writes data/synthesis/ (<utt>_original.wav, <utt>_reconstruction.wav, <utt>_as_<speaker>.wav,
16 kHz), plots/synthesis/spectrograms.png and metrics/synthesis.json (vqspeech.evaluate.synthesis
`score`: mel-cepstral distortion against the originals beside the mu-law floor, and a speaker
classifier's share of conversions given to their target). A model with the deconvolutional
decoder outputs features, not audio: the stage then writes the originals, their spectrograms and
the classifier's own accuracy, with the synthesis metrics null.
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
    model_path: cli.ModelFile = cli.MODEL,
    features_dir: cli.FeaturesDir = cli.FEATURES,
    stats_path: cli.StatsFile = cli.STATS,
    wav_dir: Annotated[Path, cli.opt("--wavs", "Folder of wavs to write.")] = Path(
        "data/synthesis"
    ),
    plot_dir: Annotated[Path, cli.opt("--plots", "Folder of the figure.")] = Path(
        "plots/synthesis"
    ),
    metrics_path: Annotated[Path, cli.opt("--metrics", "Synthesis metrics to write.")] = Path(
        "metrics/synthesis.json"
    ),
) -> None:
    """Resynthesize and voice-convert held-out utterances; score them."""
    import numpy as np
    import soundfile as sf

    from vqspeech.evaluate import heldout
    from vqspeech.evaluate import synthesis as S
    from vqspeech.features import shards
    from vqspeech.features.stats import Normalizer
    from vqspeech.io import atomic
    from vqspeech.model.checkpoint import load_model
    from vqspeech.train.loop import setup

    with cli.stage("synthesize", params_file, wav_dir, plot_dir, metrics_path) as params:
        p, seed, split = params.synthesize, params.train.seed, params.eval.split
        model, payload = load_model(model_path, input_dim=shards.dim(features_dir))
        model.to(setup(params.train.device).device).eval()
        speakers: list[str] = list(payload["speakers"])
        held_out = heldout.index(features_dir, split).column("utterance_id").to_pylist()
        rng = np.random.default_rng([seed, 7])
        ids = S.choose_ids(held_out, p.utterances, rng)  # only these are read, and the picks
        loaded = heldout.read_utterances(features_dir, ids, split, audio=True)
        chosen = [loaded[i] for i in ids]
        starts, n_lat = S.excerpts(chosen, p.seconds)
        n = n_lat * S.SAMPLES_PER_LATENT
        decoder = model.cfg.decoder
        cli.log.info(
            "read %s: %d %s utterances; synthesizing %.2f s of %s with the %s decoder",
            features_dir,
            len(held_out),
            split,
            n / S.SR,
            ", ".join(u.utterance_id for u in chosen),
            decoder,
        )
        versions = S.originals(chosen, starts, n)
        goals = S.targets(speakers, len(chosen), p.targets, rng)
        speed = None
        if decoder == "wavenet":
            bar = progress(total=n_lat, desc="generate", unit="latent")
            norm = Normalizer.load(stats_path)
            generated, speed = S.generate(
                model, chosen, starts, goals, speakers, n_lat, norm, seed, bar
            )
            bar.close()
            S.add_generated(versions, generated, goals)
        else:
            cli.log.info(
                "model.decoder is 'deconv' (features, not audio) or the model a "
                "VQ-CPC (no decoder): writing the originals only; synthesis metrics "
                "are null"
            )
        train = heldout.index(features_dir, "train")
        speaker_of = dict(
            zip(
                train.column("utterance_id").to_pylist(),
                train.column("speaker").to_pylist(),
                strict=True,
            )
        )
        fit, test = [], []
        if S.classifier_viable(speaker_of.values()):
            picks = S.classifier_picks(
                speaker_of, p.classifier_utterances, p.classifier_holdout, rng
            )
            audio = heldout.read_utterances(
                features_dir, [uid for _, uid, _ in picks], "train", audio=True
            )
            fit, test = S.classifier_audio(picks, audio, n)
            cli.log.info(
                "speaker classifier: %d + %d excerpts of %d training speakers (read "
                "those utterances alone)",
                len(fit),
                len(test),
                len(set(speaker_of.values())),
            )
        speech = S.speech_masks(chosen, starts)
        metrics = S.score(versions, speech, goals, fit, test, seed, decoder, n, speed)
        with atomic.atomic_dir(wav_dir) as tmp:
            for u, vs in zip(chosen, versions, strict=True):
                for name, audio in vs:
                    path = tmp / f"{u.utterance_id}_{name.replace('as ', 'as_')}.wav"
                    sf.write(str(path), audio, S.SR, subtype="PCM_16")
        with atomic.atomic_dir(plot_dir) as tmp:
            rows = [(u.utterance_id, vs) for u, vs in zip(chosen, versions, strict=True)]
            S.spectrogram_figure(rows, tmp / "spectrograms.png")
        atomic.write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
        cli.log.info(
            "wrote %s (%d wavs), %s/spectrograms.png, %s: %s",
            wav_dir,
            sum(len(v) for v in versions),
            plot_dir,
            metrics_path,
            json.dumps(metrics),
        )


if __name__ == "__main__":
    cli.run(app)
