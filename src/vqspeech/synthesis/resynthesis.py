"""Resynthesis of every unit system on a CPU (docs/design.md "Resynthesis"): for each system a
unit-to-spectrogram decoder (`unit_decoder`, the same size and steps for all) trained on the
system's codes of a seeded sample of train utterances, its log-mel made audio by Griffin-Lim
(`vocoder`), scored beside the originals and the vocoder's ceiling (Griffin-Lim of the original's
own log-mel):

- `wer`: word error rate of the recognizer (`asr`) on whole held-out utterances against their
  transcripts (null where the corpus has no transcripts);
- `per`: phone error rate of its phone recognizer against the utterances' own phones;
- `mcd_db`: mel-cepstral distortion against the original over its speech frames
  (`measures.mcd`; the decoded frames are the original's, one to one);
- `conversion_target_share`: the share of conversions (the first utterances as other training
  speakers) that the speaker classifier assigns to their target, chance beside it;
- `rtf`: decoding plus Griffin-Lim time over the audio's duration (1 = real time).

A held-out speaker was not trained on: a reconstruction is decoded as the mean training speaker.
A model with the WaveNet decoder is one more system, `wavenet` (`wavenet`): its own codes,
generated whole as audio, scored by the same `score`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vqspeech.evaluate.metrics import speech_mask
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.params import UnitResynthesisParams
from vqspeech.synthesis import asr, measures, unit_decoder, vocoder
from vqspeech.synthesis.excerpts import SR

if TYPE_CHECKING:
    from vqspeech.model.vqvae import VQVAE

log = logging.getLogger(__name__)


@dataclass
class Version:
    """One rendition of a held-out utterance: `system` (original, vocoder_ceiling or a unit
    system), `name` (the file stem's suffix: reconstruction or as_<speaker>), its audio."""

    system: str
    utterance_id: str
    name: str
    audio: np.ndarray
    target: str | None = None  # a conversion's target speaker
    heard: str | None = None  # what the recognizer heard (scored utterances)

    @property
    def path(self) -> str:
        """Its file under data/synthesis/."""
        return f"{self.system}/{self.utterance_id}_{self.name}.wav"


def as_float(u: Utterance) -> np.ndarray:
    if u.audio is None:
        raise ValueError(
            f"{u.utterance_id}: no audio in the feature shards (features.audio: false)"
        )
    return u.audio.astype(np.float32) / 32768.0


def standardizer(frames: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (floored at 1e-3) of every band over all frames, in float64."""
    total = sum(f.astype(np.float64).sum(axis=0) for f in frames)
    squares = sum((f.astype(np.float64) ** 2).sum(axis=0) for f in frames)
    n = sum(len(f) for f in frames)
    mean = total / n
    return mean, np.sqrt(np.maximum(squares / n - mean**2, 1e-6))


def resynthesize(
    codes: Callable[[Sequence[Utterance]], dict[str, list[np.ndarray]]],
    n_units: int,
    train: Sequence[Utterance],
    speakers: Sequence[str],
    scored: Sequence[Utterance],
    goals: Sequence[Sequence[str]],
    p: UnitResynthesisParams,
    preemphasis: float,
    seed: int,
    on_step: Callable[[str, int, float], None] | None = None,
) -> tuple[list[Version], dict[str, dict]]:
    """Every version of the `scored` utterances: the original, the vocoder's ceiling, and per
    system its reconstruction, and for the first len(goals) utterances its conversions to
    `goals[i]`. Returns them and per-system training facts (steps, last loss, seconds, rtf)."""
    iters = p.griffin_lim_iterations

    def vocode(frames: np.ndarray) -> np.ndarray:
        return vocoder.griffin_lim(frames, preemphasis, iters, seed, p.mel_inverse)

    speaker_id = {s: i for i, s in enumerate(speakers)}
    unknown = sorted({u.speaker for u in train} - set(speaker_id))
    if unknown:
        raise ValueError(f"train utterances of speakers the model was not trained on: {unknown}")
    bad = sorted({t for g in goals for t in g} - set(speaker_id))
    if bad:
        raise ValueError(f"conversion targets not among the training speakers: {bad}")
    targets = [vocoder.log_mel(as_float(u), preemphasis) for u in train]
    mean, std = standardizer(targets)
    targets = [((t - mean) / std).astype(np.float32) for t in targets]
    ids = np.array([speaker_id[u.speaker] for u in train])
    versions: list[Version] = []
    for u in scored:
        y = as_float(u)
        versions.append(Version("original", u.utterance_id, "original", y))
        ceiling = vocode(vocoder.log_mel(y, preemphasis))
        versions.append(Version("vocoder_ceiling", u.utterance_id, "reconstruction", ceiling))
    train_codes, scored_codes = codes(train), codes(scored)
    facts: dict[str, dict] = {}
    cfg = unit_decoder.DecoderConfig(**p.decoder.model_dump())
    for system in p.systems:
        started, losses = time.perf_counter(), []

        def step(i: int, loss: float, system: str = system, losses: list = losses) -> None:
            losses.append(loss)
            if on_step is not None:
                on_step(system, i, loss)

        model = unit_decoder.train(
            train_codes[system], ids, targets, n_units, len(speakers), cfg, seed, step
        )
        trained, spent, seconds = time.perf_counter() - started, 0.0, 0.0
        for i, (u, c) in enumerate(zip(scored, scored_codes[system], strict=True)):
            who: list[str | None] = [None, *(goals[i] if i < len(goals) else [])]
            for target in who:
                t0 = time.perf_counter()
                frames = unit_decoder.decode(
                    model, c, None if target is None else speaker_id[target]
                )
                audio = vocode(frames * std + mean)
                spent += time.perf_counter() - t0
                seconds += len(audio) / SR
                name = "reconstruction" if target is None else f"as_{target}"
                versions.append(Version(system, u.utterance_id, name, audio, target))
        facts[system] = {
            "units": n_units,
            "decoder_steps": cfg.steps,
            "decoder_l1_last_100": round(float(np.mean(losses[-100:])), 4),
            "train_s": round(trained, 1),
            "rtf": round(spent / seconds, 4),
        }
        log.info(
            "%s: decoder trained in %.1f s (L1 %.3f over the last 100 steps); resynthesis at "
            "%.3f x real time",
            system,
            trained,
            facts[system]["decoder_l1_last_100"],
            facts[system]["rtf"],
        )
    return versions, facts


def wavenet(
    model: VQVAE,
    scored: Sequence[Utterance],
    goals: Sequence[Sequence[str]],
    speakers: Sequence[str],
    norm: Normalizer,
    seed: int,
    bar: Any,
) -> tuple[list[Version], dict]:
    """The model's own WaveNet decoder (`model.decoder: wavenet`) as one more system, `wavenet`,
    for `score` to score as it scores the unit systems: each scored utterance whole, from its
    own codes, as the mean training speaker (reconstruction) and, for the first len(goals),
    as each of `goals[i]`; generated sample by sample (`generate.generate`, one utterance and
    its conversions a batch, `bar.update(1)` a latent), cut or padded with silence to the
    original's length so its frames are the original's. Returns the versions and the facts
    (`rtf`: generation time over the audio's duration)."""
    from vqspeech.synthesis import generate

    versions: list[Version] = []
    spent, seconds = 0.0, 0.0
    for i, u in enumerate(scored):
        goal = list(goals[i]) if i < len(goals) else []
        length = len(as_float(u))
        if len(u.features) < 2:
            raise ValueError(f"{u.utterance_id}: {len(u.features)} frame(s), not one latent")
        t0 = time.perf_counter()
        (made,), _ = generate.generate(
            model, [u], [0], [goal], speakers, len(u.features) // 2, norm, seed, bar
        )
        spent += time.perf_counter() - t0
        seconds += (1 + len(goal)) * length / SR
        for target, audio in zip([None, *goal], made, strict=True):
            audio = np.pad(audio[:length], (0, max(0, length - len(audio))))
            name = "reconstruction" if target is None else f"as_{target}"
            versions.append(Version("wavenet", u.utterance_id, name, audio, target))
    return versions, {"generate_s": round(spent, 1), "rtf": round(spent / seconds, 4)}


def score(
    versions: Sequence[Version],
    scored: Sequence[Utterance],
    transcripts: Mapping[str, str],
    listen: asr.Listener | None,
    classifier: measures.SpeakerClassifier | None,
    chance: float | None,
    facts: Mapping[str, dict],
) -> dict:
    """The `units` part of metrics/synthesis.json: per system (original and vocoder_ceiling
    first) wer and per (the word and phone error rates of what `listen` hears in its
    reconstructions, against the transcripts and the utterances' own phones; wer null where
    `listen` hears no words, both null without `listen`), mcd_db, conversion_target_share and
    the training facts. Sets each scored version's `heard`."""
    by_id = {u.utterance_id: u for u in scored}
    recons = [v for v in versions if v.target is None]
    heard = listen([v.audio for v in recons]) if listen is not None else [(None, "")] * len(recons)
    for v, (words, _) in zip(recons, heard, strict=True):
        v.heard = words
    phones_heard = {id(v): phones for v, (_, phones) in zip(recons, heard, strict=True)}
    originals = {v.utterance_id: v.audio for v in versions if v.system == "original"}
    ceps = {uid: measures.mel_cepstra(a, SR) for uid, a in originals.items()}
    out: dict[str, dict] = {}
    for system in dict.fromkeys(v.system for v in versions):
        mine = [v for v in versions if v.system == system]
        recon = [v for v in mine if v.target is None]
        conv = [v for v in mine if v.target is not None]
        row: dict[str, object] = {"wer": None, "per": None}
        if listen is not None and listen.words:
            refs = [transcripts[v.utterance_id] for v in recon]
            row["wer"] = round(asr.word_error_rate(refs, [v.heard or "" for v in recon]), 4)
        if listen is not None:
            refs = [asr.reference_phones(by_id[v.utterance_id].phones) for v in recon]
            hyps = [phones_heard[id(v)] for v in recon]
            row["per"] = round(asr.word_error_rate(refs, hyps), 4)
        if system != "original":
            row["mcd_db"] = round(
                float(
                    np.mean(
                        [
                            measures.mcd(
                                ceps[v.utterance_id],
                                measures.mel_cepstra(v.audio, SR),
                                mask=speech_mask(np.asarray(by_id[v.utterance_id].phones)),
                            )
                            for v in recon
                        ]
                    )
                ),
                3,
            )
        if conv:
            share = None
            if classifier is not None:
                cs = [measures.mel_cepstra(v.audio, SR) for v in conv]
                share = round(classifier.target_share(cs, [v.target for v in conv]), 4)
            row["conversion_target_share"] = share
            row["conversion_chance"] = chance
        row.update(facts.get(system, {}))
        out[system] = row
    return out
