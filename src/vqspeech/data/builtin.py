"""The built-in corpus: English read speech synthesized offline, with exact phone timings.

Voices of three engines (flite, Festival, espeak-ng; vqspeech.data.engines) are the raw
material. Each voice gives `speakers_per_voice` speakers (times its `variants`), each with its
own vocal-tract warp, f0 and tempo drawn from the corpus seed; each utterance draws its own
prosody (duration, f0 mean and range) and, unless `channel: off`, its own microphone, room and
noise (vqspeech.data.channel). The engines' segment times become the `phones` tier of an
MFA-layout TextGrid, scaled by the warp and fitted to the length of the audio written; nothing
in the channel moves a sample. Same params, same bytes (`data/raw/builtin/corpus.json` records
every draw).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import soundfile as sf

from vqspeech.data import channel, engines
from vqspeech.data.manifest import Candidate
from vqspeech.data.pcm import to_int16
from vqspeech.data.sentences import sentence_for
from vqspeech.data.textgrid import Interval, fit_to_duration, write_phones
from vqspeech.io import atomic
from vqspeech.io.progress import progress
from vqspeech.params import BuiltinParams, Range
from vqspeech.voices import check_voice

SynthesisError = engines.SynthesisError


@dataclass(frozen=True)
class Speaker:
    name: str
    voice: str  # engine/voice
    warp: float  # vocal-tract length factor (> 1: shorter tract, higher formants)
    f0_scale: float
    tempo: float


@dataclass(frozen=True)
class Utterance:
    utterance_id: str
    speaker: Speaker
    text: str
    prosody: engines.Prosody  # the speaker's own times this utterance's
    channel: channel.Channel | None
    noise_seed: list[int]


def _draw(r: Range, rng: np.random.Generator) -> float:
    """Log-uniform in [low, high]; exactly low when low == high."""
    return float(math.exp(rng.uniform(math.log(r.low), math.log(r.high))))


def _spread(x: float, rng: np.random.Generator) -> float:
    return float(math.exp(rng.uniform(-math.log1p(x), math.log1p(x))))


def voice_name(spec: str) -> str:
    """The part of a speaker name that says its voice: `awb` for flite's (as the flite-only
    corpus named them), `festival-kal_diphone`, `espeak-en-us-f2` for `espeak/en-us+f2`."""
    engine, voice = check_voice(spec)
    return voice if engine == "flite" else f"{engine}-{voice.replace('+', '-')}"


def speakers(b: BuiltinParams) -> list[Speaker]:
    """Every speaker of the corpus, voice by voice, each with its seeded draws.

    With variants, a speaker is voice x variant (`awb`, `awb_high`: the base variant keeps the
    voice's name); with more than one speaker per voice, `-<k>` numbers them."""
    variants = b.variants or [None]
    out = []
    for spec in b.voices:
        for k in range(b.speakers_per_voice):
            for variant in variants:
                name = voice_name(spec)
                if variant is not None and variant.name != "base":
                    name += f"_{variant.name}"
                if b.speakers_per_voice > 1:
                    name += f"-{k}"
                rng = np.random.default_rng([b.seed, len(out), 1])
                f0 = variant.f0_scale if variant else 1.0
                tempo = variant.tempo if variant else 1.0
                out.append(
                    Speaker(
                        name,
                        spec,
                        _draw(b.warp, rng),
                        f0 * _draw(b.f0_scale, rng),
                        tempo * _draw(b.tempo, rng),
                    )
                )
    return out


def held_out(b: BuiltinParams) -> tuple[list[str], list[str]]:
    """(val, test) speaker names of `held_out`: a voice stands for all its speakers."""
    everyone = speakers(b)

    def names(entries: Sequence[str]) -> list[str]:
        out = []
        for entry in entries:
            if "/" in entry:
                check_voice(entry)
                of_voice = [s.name for s in everyone if s.voice == entry]
                if not of_voice:
                    raise ValueError(
                        f"data.builtin.held_out: voice {entry!r} is not in data.builtin.voices"
                    )
                out += of_voice
            else:
                out.append(entry)
        return out

    return names(b.held_out.val), names(b.held_out.test)


def utterances(b: BuiltinParams) -> list[Utterance]:
    """Every utterance, its text and its seeded prosody and channel; a function of the params."""
    out = []
    p = b.prosody
    for s_idx, speaker in enumerate(speakers(b)):
        for u_idx in range(b.utterances_per_speaker):
            rng = np.random.default_rng([b.seed, s_idx, u_idx, 2])
            prosody = engines.Prosody(
                f0_scale=speaker.f0_scale * _spread(p.f0_mean, rng),
                f0_range=_spread(p.f0_range, rng),
                stretch=1.0 / speaker.tempo * _spread(p.stretch, rng),
            )
            out.append(
                Utterance(
                    f"{speaker.name}_{u_idx:04d}",
                    speaker,
                    sentence_for(b.seed, s_idx, u_idx),
                    prosody,
                    channel.Channel.draw(b.channel, rng),
                    [b.seed, s_idx, u_idx, 3],
                )
            )
    return out


def finish(
    rendered: engines.Rendered, u: Utterance, rooms: Sequence[np.ndarray]
) -> tuple[np.ndarray, list[Interval], float]:
    """Warp, resample to 16 kHz and pass through the channel: (int16 samples, intervals, s)."""
    factor = u.speaker.warp
    y = rendered.samples
    if factor != 1.0 or rendered.sample_rate != channel.SAMPLE_RATE:
        y = channel.warp(y, rendered.sample_rate, factor)
    y = channel.apply(y, u.channel, rooms, np.random.default_rng(u.noise_seed))
    samples = to_int16(y)
    duration = len(samples) / channel.SAMPLE_RATE
    scaled = [Interval(iv.start / factor, iv.end / factor, iv.label) for iv in rendered.intervals]
    return samples, fit_to_duration(scaled, duration), duration


def _record(u: Utterance) -> dict:
    return {
        "utterance_id": u.utterance_id,
        "speaker": u.speaker.name,
        "text": u.text,
        "prosody": asdict(u.prosody),
        "channel": asdict(u.channel) if u.channel else None,
    }


def generate(root: Path, b: BuiltinParams, jobs: int) -> list[Candidate]:
    """Synthesize the corpus under `root` (`wav/` and `textgrids/`, one folder per speaker, and
    corpus.json with every speaker's and utterance's draws)."""
    todo = utterances(b)
    rooms = channel.room_bank(b.channel, b.seed) if b.channel != "off" else []
    by_speaker: dict[str, list[int]] = {}
    candidates = []
    for i, u in enumerate(todo):
        by_speaker.setdefault(u.speaker.name, []).append(i)
        wav = PurePosixPath("wav", u.speaker.name, f"{u.utterance_id}.wav")
        grid = PurePosixPath("textgrids", u.speaker.name, f"{u.utterance_id}.TextGrid")
        candidates.append(
            Candidate(u.utterance_id, u.speaker.name, root / wav, root / grid, wav, grid, u.text)
        )

    def run(indices: list[int]) -> int:
        group = [todo[i] for i in indices]
        rendered = engines.render(
            group[0].speaker.voice,
            [(u.text, u.prosody) for u in group],
            [str(candidates[i].audio) for i in indices],
        )
        for i, u, r in zip(indices, group, rendered, strict=True):
            samples, intervals, duration = finish(r, u, rooms)
            c = candidates[i]
            c.audio.parent.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
            sf.write(str(c.audio), samples, channel.SAMPLE_RATE, subtype="PCM_16")
            write_phones(c.textgrid, intervals, duration)  # type: ignore[arg-type]
        return len(indices)

    # the engines run as subprocesses (flite, Festival) or release the GIL (libespeak-ng,
    # soxr, scipy), so threads give real parallelism; a speaker is one task (one Festival run)
    with (
        ThreadPoolExecutor(max_workers=jobs) as pool,
        progress(total=len(todo), desc="synthesize", unit="utt") as bar,
    ):
        for done in as_completed([pool.submit(run, ix) for ix in by_speaker.values()]):
            bar.update(done.result())
    record = {
        "params": b.model_dump(),
        "speakers": [asdict(s) for s in speakers(b)],
        "utterances": [_record(u) for u in todo],
    }
    atomic.write_text(root / "corpus.json", json.dumps(record, indent=1) + "\n")
    return candidates
