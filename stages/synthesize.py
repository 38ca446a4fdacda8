"""synthesize stage: resynthesis and voice conversion with the WaveNet decoder.

For `synthesize.utterances` held-out (`eval.split`) utterances, `synthesize.seconds` from 0.1 s
before the first phone are encoded, quantized and decoded sample by sample twice over: as a
reconstruction (the held-out speaker is unseen, so with the mean speaker embedding, as
everywhere) and as voice conversions (same codes, `synthesize.targets` training speakers'
embeddings).

Writes data/synthesis/ (<utt>_original.wav, <utt>_reconstruction.wav, <utt>_as_<speaker>.wav,
16 kHz), plots/synthesis/spectrograms.png and metrics/synthesis.json: mel-cepstral distortion
of the reconstructions against the originals (with the mu-law round trip of the originals as the
floor, same run), and the share of conversions a speaker classifier (fitted here on training
speakers' audio) assigns to the target speaker, next to the share of reconstructions it assigns
to those same targets (what an embedding that did nothing would get) and chance. A model with
the deconvolutional decoder outputs features, not audio: the stage then writes the originals,
their spectrograms and the classifier's own accuracy, with the synthesis metrics null.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import numpy as np
import soundfile as sf
import torch
import typer

from vqspeech import atomic, shards, stagelog, synthesis
from vqspeech.model.wavenet import mulaw_decode, mulaw_encode
from vqspeech.phones import SILENCES
from vqspeech.training import load_model, setup

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
log = stagelog.setup()
Opt = typer.Option
SR = 16000


@app.command()
def main(
    params_file: Annotated[Path, Opt("--params")] = Path("params.yaml"),
    model_path: Annotated[Path, Opt("--model")] = Path("models/model.pt"),
    features_dir: Annotated[Path, Opt("--features")] = Path("data/features"),
    stats_path: Annotated[Path, Opt("--stats")] = Path("data/stats.json"),
    wav_dir: Annotated[Path, Opt("--wavs")] = Path("data/synthesis"),
    plot_dir: Annotated[Path, Opt("--plots")] = Path("plots/synthesis"),
    metrics_path: Annotated[Path, Opt("--metrics")] = Path("metrics/synthesis.json"),
) -> None:
    """Resynthesize and voice-convert held-out utterances; score them."""
    params = stagelog.load_params_or_exit(log, params_file)
    atomic.remove_stale(wav_dir, plot_dir, metrics_path)
    p, seed = params.synthesize, params.train.seed
    with stagelog.timed(log, "synthesize"), stagelog.exit_on_error(log):
        model, payload = load_model(model_path)
        device = setup(params.train.device).device
        model.to(device).eval()
        speakers: list[str] = list(payload["speakers"])
        stats = json.loads(stats_path.read_text())
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        held_out = list(shards.iter_utterances(features_dir, params.eval.split, audio=True))
        rng = np.random.default_rng([seed, 7])
        chosen, starts, n_lat = synthesis.choose(held_out, p.utterances, p.seconds, rng)
        up = synthesis.SAMPLES_PER_LATENT
        n = n_lat * up
        log.info("read %s: %d %s utterances; synthesizing %.2f s of %s with the %s decoder",
                 features_dir, len(held_out), params.eval.split, n / SR,
                 ", ".join(u.utterance_id for u in chosen), model.cfg.decoder)  # fmt: skip
        originals = [u.audio[s * up : s * up + n].astype(np.float32) / 32768
                     for u, s in zip(chosen, starts, strict=True)]  # fmt: skip
        versions: list[list[tuple[str, np.ndarray]]] = [[("original", a)] for a in originals]
        goals = synthesis.targets(speakers, len(chosen), p.targets, rng)
        speed = None
        if model.cfg.decoder == "wavenet":
            generated, speed = _generate(
                model, chosen, starts, goals, speakers, n_lat, mean, std, seed
            )
            for i, (uid_versions, goal) in enumerate(zip(versions, goals, strict=True)):
                uid_versions.append(("reconstruction", generated[i][0]))
                uid_versions += [(f"as {t}", a) for t, a in zip(goal, generated[i][1:],
                                                                 strict=True)]  # fmt: skip
        else:
            log.info("model.decoder is 'deconv' (features, not audio): writing the originals "
                     "only; synthesis metrics are null")  # fmt: skip

        train_utts = list(shards.iter_utterances(features_dir, "train", audio=True))
        per_speaker = Counter(u.speaker for u in train_utts)
        fit, test = [], []
        if len(per_speaker) < 2 or min(per_speaker.values()) < 2:
            log.warning("speaker classifier skipped (its metrics are null): it needs 2 or more "
                        "training speakers with 2 or more utterances each, found %s",
                        dict(per_speaker))  # fmt: skip
        else:
            fit, test = synthesis.classifier_split(
                train_utts, p.classifier_utterances, p.classifier_holdout, n, rng
            )
        speech = [np.array([ph not in SILENCES for ph in u.phones[2 * s :]])
                  for u, s in zip(chosen, starts, strict=True)]  # fmt: skip
        metrics = _score(versions, speech, goals, fit, test, seed, model.cfg.decoder, n, speed)

        with atomic.atomic_dir(wav_dir) as tmp:
            for u, vs in zip(chosen, versions, strict=True):
                for name, audio in vs:
                    stem = name.replace("as ", "as_")
                    sf.write(str(tmp / f"{u.utterance_id}_{stem}.wav"), audio, SR,
                             subtype="PCM_16")  # fmt: skip
        with atomic.atomic_dir(plot_dir) as tmp:
            rows = [(u.utterance_id, vs) for u, vs in zip(chosen, versions, strict=True)]
            synthesis.spectrogram_figure(rows, tmp / "spectrograms.png")
        atomic.write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
        log.info("wrote %s (%d wavs), %s/spectrograms.png, %s: %s", wav_dir,
                 sum(len(v) for v in versions), plot_dir, metrics_path,
                 json.dumps(metrics))  # fmt: skip


def _generate(model, chosen, starts, goals, speakers, n_lat, mean, std, seed):
    """Reconstruction + conversions of each utterance, generated in one batch.
    Returns (per utterance: [reconstruction, *conversions] float audio, speed dict)."""
    device = next(model.parameters()).device
    latents = []
    for u, s in zip(chosen, starts, strict=True):
        x = torch.from_numpy(((u.features - mean) / std).astype(np.float32))[None].to(device)
        _, vq = model.encode(x)  # the whole utterance (context), then the excerpt's latents
        latents.append(vq.quantized[0, s : s + n_lat])
    rows, ids = [], []
    index = {s: i for i, s in enumerate(speakers)}
    for q, goal in zip(latents, goals, strict=True):
        for spk in [-1, *(index[t] for t in goal)]:
            rows.append(q)
            ids.append(spk)
    batch_latents = torch.stack(rows)
    spk_vectors = model.speaker_vectors(torch.tensor(ids, device=device))
    bar = stagelog.progress(total=n_lat, desc="generate", unit="latent")
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    # generate() reports after every latent's samples
    classes = model.decoder.generate(
        batch_latents, spk_vectors, generator, progress=lambda t: bar.update(1)
    )
    seconds = time.perf_counter() - start
    bar.close()
    audio = mulaw_decode(classes.cpu()).numpy()
    per = 1 + len(goals[0])
    out = [[audio[i * per + j] for j in range(per)] for i in range(len(chosen))]
    steps = classes.shape[1]
    speed = {
        "device": device.type,
        "sequences": len(rows),
        "steps_per_second": round(steps / seconds, 1),  # samples of one sequence per second
        "samples_per_second": round(steps * len(rows) / seconds, 1),  # all sequences together
        "seconds": round(seconds, 1),
    }
    log.info("generated %d x %d samples in %.1f s (%s samples/s in all)", len(rows), steps,
             seconds, speed["samples_per_second"])  # fmt: skip
    return out, speed


def _score(versions, speech, goals, fit, test, seed, decoder, n, speed) -> dict:
    """Metrics; MCD over the speech frames of each utterance (per its phone labels)."""

    def ceps(audio: np.ndarray) -> np.ndarray:
        return synthesis.mel_cepstra(audio, SR)

    def mean_mcd(triples) -> float:
        values = [synthesis.mcd(ceps(a), ceps(b), mask=m) for a, b, m in triples]
        return round(float(np.mean(values)), 3)

    classifier = None
    if fit:
        classifier = synthesis.SpeakerClassifier(seed)
        classifier.fit([ceps(a) for _, a in fit], [s for s, _ in fit])
    originals = [v[0][1] for v in versions]
    mulaw = [mulaw_decode(mulaw_encode(torch.from_numpy(a))).numpy() for a in originals]
    wavenet = decoder == "wavenet"
    # versions: [original] (deconv) or [original, reconstruction, *conversions] (wavenet)
    recon = [v[1][1] for v in versions if len(v) > 1]
    conv = [[a for _, a in v[2:]] for v in versions]
    flat_goals = [t for g in goals for t in g]

    def share(audios: list[np.ndarray], goals: list[str]) -> float | None:
        if classifier is None or not audios:
            return None
        return round(classifier.target_share([ceps(a) for a in audios], goals), 4)

    conv_pairs = [(o, c, m) for o, cs, m in zip(originals, conv, speech, strict=True) for c in cs]
    recon_for_goals = [r for r, g in zip(recon, goals, strict=False) for _ in g]  # [] for deconv
    return {
        "decoder": decoder,
        "utterances": len(versions),
        "seconds_each": round(n / SR, 3),
        "mcd_db": {
            "mulaw_original": mean_mcd(zip(originals, mulaw, speech, strict=True)),  # the floor
            "reconstruction": mean_mcd(zip(originals, recon, speech, strict=True))
            if wavenet
            else None,
            "conversion": mean_mcd(conv_pairs) if wavenet else None,
        },
        "speaker_classifier": {
            "heldout_accuracy": share([a for _, a in test], [s for s, _ in test]),
            "chance": round(1 / len({s for s, _ in fit}), 4) if fit else None,
            "conversion_target_share": share([c for _, c, _ in conv_pairs], flat_goals),
            # the same targets for the reconstructions: what an ignored speaker embedding gets
            "reconstruction_target_share": share(recon_for_goals, flat_goals),
        },
        "generation": speed,
    }


if __name__ == "__main__":
    sys.exit(app())
