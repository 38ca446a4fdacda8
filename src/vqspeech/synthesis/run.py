"""The synthesize stage's unit resynthesis, end to end (`run`): choose and read what is needed,
train a decoder per system, resynthesize, score; and the checks that come before it."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import soundfile as sf
import torch

from vqspeech.data.forcealign import words
from vqspeech.evaluate import heldout
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.io.progress import progress
from vqspeech.params import Params, SynthesizeParams
from vqspeech.synthesis import asr, figure, measures, page, resynthesis
from vqspeech.synthesis import excerpts as E
from vqspeech.synthesis.resynthesis import Version
from vqspeech.synthesis.units import Coder, stored_codes

log = logging.getLogger(__name__)


class Reader:
    """`heldout.read_utterances` of `folder` for a stage that reads several sets of one split: ids
    announced beforehand are read in the same pass over the shards as the first set asked for,
    and kept, so each split's shards are read once. Only the announced utterances are kept;
    what is asked for without an announcement is returned, not held. An announced id missing
    from the split fails the read that brings it, named as any missing one."""

    def __init__(self, folder: str | os.PathLike[str], audio: bool = False) -> None:
        self.folder, self.audio = folder, audio
        self._wanted: dict[str, set[str]] = {}
        self._got: dict[str, dict[str, Utterance]] = {}

    def announce(self, split: str, ids: Iterable[str]) -> None:
        """`ids` of `split` will be asked for: read them with the next read of that split."""
        self._wanted.setdefault(split, set()).update(ids)

    def __call__(self, split: str, ids: Iterable[str]) -> dict[str, Utterance]:
        """The utterances `ids` of `split` (a ShardError for a missing one)."""
        ids, got = list(ids), self._got.setdefault(split, {})
        read: dict[str, Utterance] = {}
        if any(i not in got for i in ids):
            wanted = self._wanted.get(split, set())
            todo = (set(ids) | wanted) - got.keys()
            read = heldout.read_utterances(self.folder, todo, split, self.audio)
            got.update((i, u) for i, u in read.items() if i in wanted)
        return {i: got[i] if i in got else read[i] for i in ids}


def check_systems(systems: list[str], report_path: Path) -> None:
    """ValueError naming the systems of `synthesize.units.systems` that evaluate did not score."""
    scored = set(json.loads(Path(report_path).read_text()))
    missing = [s for s in systems if s not in scored]
    if missing:
        raise ValueError(
            f"synthesize.units.systems names {', '.join(missing)}, which {report_path} has not "
            f"scored (it has {', '.join(sorted(scored))})"
        )


def run(
    params: Params,
    model: torch.nn.Module,
    speakers: list[str],
    features_dir: Path,
    stats_path: Path,
    codes_dir: Path,
    manifest_path: Path,
    fit: list[tuple[str, np.ndarray]],
    classifier: measures.SpeakerClassifier | None = None,
    reader: Reader | None = None,
) -> tuple[dict, list[Version], list[str], dict[str, str]]:
    """metrics `units`, the versions to write, the utterance ids shown on the page and the
    scored utterances' transcripts (words as the recognizer spells them). The speaker classifier
    is fitted on `fit` unless `classifier` is it, fitted; `reader` reads the utterances (one
    that `announce_picks` told reads each split once)."""
    p, u = params.synthesize, params.synthesize.units
    seed, split = params.train.seed, params.eval.split
    read = reader or Reader(features_dir, audio=True)
    ids, rng = _scored_pick(params, features_dir)
    pick, n_train = _train_pick(params, features_dir)
    got = read(split, ids)
    scored = [got[i] for i in ids]
    shown = ids[: p.utterances]
    goals = E.targets(speakers, len(shown), p.targets, rng)
    got = read("train", pick)
    train = [got[i] for i in pick]
    norm = Normalizer.load(stats_path)
    log.info(
        f"units: {', '.join(u.systems)}; decoders trained on {len(train)} of {n_train} "
        f"train utterances, {len(scored)} {split} utterances resynthesized whole"
    )
    coder = Coder(u.systems, model, norm, features_dir, codes_dir, seed)
    stored = stored_codes(codes_dir, ids)  # the held-out codes and latents align wrote
    bar = progress(total=u.decoder.steps * len(u.systems), desc="unit decoders", unit="step")
    versions, facts = resynthesis.resynthesize(
        lambda us: coder.codes(us, stored), coder.k, train, speakers, scored, goals, u,
        params.features.preemphasis, seed, lambda *_: bar.update(1),
    )  # fmt: skip
    bar.close()
    if model.cfg.decoder == "wavenet" and u.wavenet:  # its own decoder, scored the same way
        n = sum(len(x.features) // 2 for x in scored)
        bar = progress(total=n, desc="wavenet (whole utterances)", unit="latent")
        made, facts["wavenet"] = resynthesis.wavenet(
            model, scored, goals, speakers, norm, seed, bar
        )
        bar.close()
        versions += made
    table = pq.read_table(manifest_path, columns=["utterance_id", "text"]).to_pylist()
    text = {r["utterance_id"]: " ".join(words(r["text"])) for r in table}
    transcripts = {i: text.get(i, "") for i in ids}
    hear_words, vocabulary = all(transcripts.values()), None
    if not hear_words:
        log.warning(f"{sum(not t for t in transcripts.values())} scored utterances have no "
                    "transcript: word error rates are null")  # fmt: skip
    elif u.asr_vocabulary == "corpus":
        vocabulary, unknown = asr.known_words(w for t in text.values() for w in t.split())
        if unknown:
            log.warning(
                f"{len(unknown)} corpus words are not in the recognizer's dictionary "
                f"(it cannot hear them), e.g. {', '.join(unknown[:5])}"
            )
    with tempfile.TemporaryDirectory() as work:
        jobs = min(len(os.sched_getaffinity(0)), 4)  # a process loads three decoders
        listen = asr.Listener(vocabulary, Path(work), hear_words, jobs)
        systems = _scores(versions, scored, transcripts, listen, fit, seed, facts, classifier)
    units = {
        "scored_utterances": len(scored),
        "converted_utterances": len(shown),
        "train_utterances": len(train),
        "asr_vocabulary": u.asr_vocabulary,
        "griffin_lim_iterations": u.griffin_lim_iterations,
        "systems": systems,
    }
    return units, versions, shown, transcripts


def _scored_pick(params: Params, features_dir: Path) -> tuple[list[str], np.random.Generator]:
    """The held-out utterances scored (seeded), and the draw that goes on to the conversions."""
    rng = np.random.default_rng([params.train.seed, 31])
    held_out = heldout.index(features_dir, params.eval.split).column("utterance_id").to_pylist()
    n = min(params.synthesize.units.scored_utterances, len(held_out))
    return E.choose_ids(held_out, n, rng), rng


def _train_pick(params: Params, features_dir: Path) -> tuple[list[str], int]:
    """The train utterances the decoders learn on (on a draw of their own), and of how many."""
    sample = np.random.default_rng([params.train.seed, 32])
    train_ids = heldout.index(features_dir, "train").column("utterance_id").to_pylist()
    n = min(params.synthesize.units.train_utterances, len(train_ids))
    return E.choose_ids(train_ids, n, sample), len(train_ids)


def announce_picks(reader: Reader, params: Params, features_dir: Path) -> None:
    """Tell `reader` which utterances `run` will read, so the stage reads each split once."""
    reader.announce(params.eval.split, _scored_pick(params, features_dir)[0])
    reader.announce("train", _train_pick(params, features_dir)[0])


def _scores(
    versions: list[Version],
    scored: list[Utterance],
    transcripts: dict[str, str],
    listen: asr.Listener,
    fit: list[tuple[str, np.ndarray]],
    seed: int,
    facts: dict[str, dict],
    classifier: measures.SpeakerClassifier | None,
) -> dict[str, dict]:
    chance = round(1 / len({s for s, _ in fit}), 4) if fit else None
    if classifier is None:
        classifier = measures.fitted_classifier(fit, seed)
    return resynthesis.score(versions, scored, transcripts, listen, classifier, chance, facts)


def write_wavs(folder: Path, versions: Sequence[Version]) -> None:
    """Every version as 16 kHz PCM at `folder / version.path`."""
    for v in versions:
        (folder / v.path).parent.mkdir(exist_ok=True)
        sf.write(str(folder / v.path), v.audio, E.SR, subtype="PCM_16")


def write_page(
    folder: Path,
    versions: Sequence[Version],
    shown: Sequence[str],
    transcripts: dict[str, str],
    scores: dict[str, dict],
    wav_dir: Path,
    page_dir: Path,
) -> None:
    """`folder`/index.html (linking `wav_dir` as seen from `page_dir`, where `folder` will be)
    and a spectrogram image per shown utterance."""
    images = {uid: f"{uid}.png" for uid in shown}
    for uid in shown:
        rows = figure.by_system(versions, uid)
        figure.spectrogram_figure(rows, folder / images[uid], size=(2.0, 1.2))
    text = page.render(versions, shown, transcripts, scores, wav_dir, page_dir, images)
    (folder / "index.html").write_text(text, encoding="utf-8")


def classifier_data(
    features_dir: Path,
    p: SynthesizeParams,
    samples: int,
    rng: np.random.Generator,
    reader: Reader | None = None,
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """The speaker classifier's (fit, test) excerpts of the train speakers
    (`measures.classifier_excerpts`, reading those utterances with `reader`: in the stage, in one
    pass with the decoders' utterances)."""
    train = heldout.index(features_dir, "train")
    columns = (train.column(c).to_pylist() for c in ("utterance_id", "speaker"))
    speaker_of = dict(zip(*columns, strict=True))
    reader = reader or Reader(features_dir, audio=True)

    def read(ids: list[str]) -> dict[str, Utterance]:
        return reader("train", ids)

    return measures.classifier_excerpts(
        speaker_of, read, p.classifier_utterances, p.classifier_holdout, samples, rng
    )


def write_outputs(
    wav_dir: Path,
    plot_dir: Path,
    chosen: Sequence[Utterance],
    versions: Sequence[Sequence[tuple[str, np.ndarray]]],
    units: tuple[dict, list[Version], list[str], dict[str, str]] | None,
) -> int:
    """Both output folders, atomically: WaveNet's excerpt versions (`<utt>_<version>.wav`, the
    spectrograms.png of them) and `run`'s (`write_wavs`, `write_page`); returns the wav count."""
    from vqspeech.io import atomic

    made = [] if units is None else units[1]
    with atomic.atomic_dir(wav_dir) as tmp:
        for u, vs in zip(chosen, versions, strict=True):
            for name, audio in vs:
                path = tmp / f"{u.utterance_id}_{name.replace('as ', 'as_')}.wav"
                sf.write(str(path), audio, E.SR, subtype="PCM_16")
        write_wavs(tmp, made)
    with atomic.atomic_dir(plot_dir) as tmp:
        rows = [(u.utterance_id, vs) for u, vs in zip(chosen, versions, strict=True)]
        figure.spectrogram_figure(rows, tmp / "spectrograms.png")
        if units is not None:
            metrics, _, shown, transcripts = units
            write_page(tmp, made, shown, transcripts, metrics["systems"], wav_dir, plot_dir)
    return sum(len(v) for v in versions) + len(made)
