"""synthesize stage: resynthesis of every unit system on a CPU, and WaveNet's when it decodes.

Units (`synthesize.units`, `synthesis.resynthesis`): for each system of `units.systems` (as named
in reports/eval.json) a unit-to-spectrogram decoder trained on its codes of a seeded sample of
train utterances, made audio by Griffin-Lim; `units.scored_utterances` held-out utterances
resynthesized whole, the first `synthesize.utterances` also converted to `synthesize.targets`
training speakers. Writes data/synthesis/<system>/<utterance>_<version>.wav (original,
vocoder_ceiling, each system), plots/synthesis/index.html (the page to listen to) with a
spectrogram image per converted utterance, and metrics/synthesis.json `units`: word error rate,
MCD, conversions' target-speaker share, real-time factor per system, beside the originals' and
the vocoder ceiling's.

WaveNet (model.decoder: wavenet): `synthesize.utterances` held-out utterances (`synthesize.seconds`
from 0.1 s before the first phone) decoded as a reconstruction (mean speaker embedding) and as
conversions to `synthesize.targets` training speakers, written as data/synthesis/*.wav beside
plots/synthesis/spectrograms.png, scored in metrics/synthesis.json (`synthesis.measures.score`:
MCD beside the mu-law floor, a speaker classifier's share of conversions given to their target;
null without WaveNet).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from vqspeech import cli
from vqspeech.io.progress import progress

if TYPE_CHECKING:
    import numpy as np
    import torch

    from vqspeech.features.shards import Utterance
    from vqspeech.params import Params
    from vqspeech.synthesis.resynthesis import Version

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
    import soundfile as sf

    from vqspeech.evaluate import heldout
    from vqspeech.features import shards, stats
    from vqspeech.io import atomic
    from vqspeech.model.checkpoint import load_model
    from vqspeech.model.device import pick, set_threads
    from vqspeech.synthesis import excerpts as E
    from vqspeech.synthesis import figure, generate, measures, page

    with cli.stage("synthesize", params_file, wav_dir, plot_dir, metrics_path) as params:
        p, seed, split = params.synthesize, params.train.seed, params.eval.split
        check_systems(p.units.systems, report_path)
        set_threads(params.train.threads)  # the decoders' weights depend on the thread count
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
        units, unit_versions, shown, transcripts = resynthesize_units(
            params,
            model,
            speakers,
            features_dir,
            stats_path,
            codes_dir,
            report_path,
            manifest_path,
            fit,
        )
        metrics["units"] = units
        with atomic.atomic_dir(wav_dir) as tmp:
            for u, vs in zip(chosen, versions, strict=True):
                for name, audio in vs:
                    path = tmp / f"{u.utterance_id}_{name.replace('as ', 'as_')}.wav"
                    sf.write(str(path), audio, E.SR, subtype="PCM_16")
            for v in unit_versions:
                (tmp / v.path).parent.mkdir(exist_ok=True)
                sf.write(str(tmp / v.path), v.audio, E.SR, subtype="PCM_16")
        with atomic.atomic_dir(plot_dir) as tmp:
            rows = [(u.utterance_id, vs) for u, vs in zip(chosen, versions, strict=True)]
            figure.spectrogram_figure(rows, tmp / "spectrograms.png")
            images = {}
            for uid in shown:
                images[uid] = f"{uid}.png"
                figure.spectrogram_figure(
                    figure.by_system(unit_versions, uid), tmp / images[uid], size=(2.0, 1.2)
                )
            text = page.render(
                unit_versions, shown, transcripts, units["systems"], wav_dir, plot_dir, images
            )
            (tmp / "index.html").write_text(text, encoding="utf-8")
        atomic.write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
        wavs = sum(len(v) for v in versions) + len(unit_versions)
        cli.log.info(
            f"wrote {wav_dir} ({wavs} wavs), {plot_dir}/index.html and its spectrograms, "
            f"{metrics_path}"
        )


def check_systems(systems: list[str], report_path: Path) -> None:
    """ValueError naming the systems of `synthesize.units.systems` that evaluate did not score."""
    scored = set(json.loads(Path(report_path).read_text()))
    missing = [s for s in systems if s not in scored]
    if missing:
        raise ValueError(
            f"synthesize.units.systems names {', '.join(missing)}, which {report_path} has not "
            f"scored (it has {', '.join(sorted(scored))})"
        )


def resynthesize_units(
    params: Params,
    model: torch.nn.Module,
    speakers: list[str],
    features_dir: Path,
    stats_path: Path,
    codes_dir: Path,
    report_path: Path,
    manifest_path: Path,
    fit: list[tuple[str, np.ndarray]],
) -> tuple[dict, list[Version], list[str], dict[str, str]]:
    """metrics `units`, the versions to write, the utterance ids shown on the page and the
    scored utterances' transcripts (words as the recognizer spells them)."""
    import tempfile

    import numpy as np
    import pyarrow.parquet as pq

    from vqspeech.data.forcealign import words
    from vqspeech.evaluate import heldout
    from vqspeech.features.stats import Normalizer
    from vqspeech.synthesis import asr, resynthesis
    from vqspeech.synthesis import excerpts as E
    from vqspeech.synthesis.units import Coder, stored_codes

    p, u, seed, split = (
        params.synthesize,
        params.synthesize.units,
        params.train.seed,
        params.eval.split,
    )
    rng = np.random.default_rng([seed, 31])  # the scored utterances and the conversions
    held_out = heldout.index(features_dir, split).column("utterance_id").to_pylist()
    ids = E.choose_ids(held_out, min(u.scored_utterances, len(held_out)), rng)
    got = heldout.read_utterances(features_dir, ids, split, audio=True)
    scored = [got[i] for i in ids]
    shown = ids[: p.utterances]
    goals = E.targets(speakers, len(shown), p.targets, rng)
    train_ids = heldout.index(features_dir, "train").column("utterance_id").to_pylist()
    sample = np.random.default_rng([seed, 32])  # what the decoders learn on, on its own draw
    pick = E.choose_ids(train_ids, min(u.train_utterances, len(train_ids)), sample)
    got = heldout.read_utterances(features_dir, pick, "train", audio=True)
    train = [got[i] for i in pick]
    norm = Normalizer.load(stats_path)
    cli.log.info(
        f"units: {', '.join(u.systems)}; decoders trained on {len(train)} of {len(train_ids)} "
        f"train utterances, {len(scored)} {split} utterances resynthesized whole"
    )
    with cli.timed("k-means systems"):
        coder = Coder(u.systems, model, norm, features_dir, codes_dir, seed)
    stored = stored_codes(codes_dir, ids)  # the held-out codes and latents align wrote
    bar = progress(total=u.decoder.steps * len(u.systems), desc="unit decoders", unit="step")
    versions, facts = resynthesis.resynthesize(
        lambda us: coder.codes(us, stored), coder.k, train, speakers, scored, goals, u,
        params.features.preemphasis, seed, lambda *_: bar.update(1),
    )  # fmt: skip
    bar.close()
    table = pq.read_table(manifest_path, columns=["utterance_id", "text"]).to_pylist()
    text = {r["utterance_id"]: " ".join(words(r["text"])) for r in table}
    transcripts = {i: text.get(i, "") for i in ids}
    hear = None
    if all(transcripts.values()):
        with tempfile.TemporaryDirectory() as work:
            vocabulary = None
            if u.asr_vocabulary == "corpus":
                vocabulary, unknown = asr.known_words(w for t in text.values() for w in t.split())
                if unknown:
                    cli.log.warning(
                        f"{len(unknown)} corpus words are not in the recognizer's dictionary "
                        f"(it cannot hear them), e.g. {', '.join(unknown[:5])}"
                    )
            hear = asr.Recognizer(vocabulary, Path(work)).words
            systems = _scores(versions, scored, transcripts, hear, fit, seed, facts)
    else:
        cli.log.warning(f"{sum(not t for t in transcripts.values())} scored utterances have no "
                        "transcript: word error rates are null")  # fmt: skip
        systems = _scores(versions, scored, transcripts, None, fit, seed, facts)
    units = {
        "scored_utterances": len(scored),
        "converted_utterances": len(shown),
        "train_utterances": len(train),
        "asr_vocabulary": u.asr_vocabulary,
        "griffin_lim_iterations": u.griffin_lim_iterations,
        "systems": systems,
    }
    return units, versions, shown, transcripts


def _scores(
    versions: list[Version],
    scored: list[Utterance],
    transcripts: dict[str, str],
    hear: Callable[[np.ndarray], str] | None,
    fit: list[tuple[str, np.ndarray]],
    seed: int,
    facts: dict[str, dict],
) -> dict[str, dict]:
    from vqspeech.synthesis import measures, resynthesis

    classifier, chance = None, None
    if fit:
        classifier = measures.SpeakerClassifier(seed)
        classifier.fit([measures.mel_cepstra(a) for _, a in fit], [s for s, _ in fit])
        chance = round(1 / len({s for s, _ in fit}), 4)
    return resynthesis.score(versions, scored, transcripts, hear, classifier, chance, facts)


if __name__ == "__main__":
    cli.run(app)
