"""The built-in corpus: English speech synthesized offline with flite, with exact phone timings.

Each speaker is a flite voice with a pitch and tempo variant. flite's `-psdur` prints every
segment with its end time; those become the `phones` tier of an MFA-layout TextGrid, fitted to
the length of the wav flite wrote. flite is deterministic, so the same params give the same bytes.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import soundfile as sf

from vqspeech import phones
from vqspeech.cli import progress
from vqspeech.data.manifest import Candidate
from vqspeech.data.sentences import sentence_for
from vqspeech.data.textgrid import Interval, fit_to_duration, write_phones

# Median f0 (Hz) of each flite 2.2 voice, measured with librosa.pyin on its default settings;
# flite's `int_f0_target_mean` is absolute, so a variant's f0_scale multiplies these.
VOICE_F0_HZ: dict[str, float] = {"awb": 131.0, "rms": 98.0, "slt": 171.0, "kal16": 90.0}


class FliteError(RuntimeError):
    """flite is missing or failed on an utterance."""


@dataclass(frozen=True)
class Speaker:
    name: str
    voice: str
    f0_scale: float
    tempo: float

    def flite_options(self) -> list[str]:
        options = ["-voice", self.voice]
        if self.f0_scale != 1.0:
            f0 = VOICE_F0_HZ[self.voice] * self.f0_scale
            options += ["--setf", f"int_f0_target_mean={f0:.1f}"]
        if self.tempo != 1.0:
            options += ["--setf", f"duration_stretch={1.0 / self.tempo:.4f}"]
        return options


def speakers(voices: list[str], variants: list[tuple[str, float, float]]) -> list[Speaker]:
    """Every voice x variant; a variant is (name, f0_scale, tempo). `base` keeps the voice name."""
    return [
        Speaker(voice if name == "base" else f"{voice}_{name}", voice, f0, tempo)
        for voice in voices
        for name, f0, tempo in variants
    ]


def flite_binary() -> str:
    path = shutil.which("flite")
    if path is None:
        raise FliteError("flite not found on PATH: install it with `apt-get install -y flite`")
    return path


def parse_psdur(output: str) -> list[Interval]:
    """Parse flite's `-psdur` output (`name:end name:end ...`) into intervals from 0."""
    intervals = []
    start = 0.0
    for token in output.split():
        name, sep, end_text = token.rpartition(":")
        if not sep:
            raise FliteError(f"unexpected -psdur token {token!r}")
        end = float(end_text)
        if end > start:  # flite can emit zero-length segments; they carry no frames
            intervals.append(Interval(start, end, phones.from_flite(name)))
            start = end
    return _merge_repeats(intervals)


def _merge_repeats(intervals: list[Interval]) -> list[Interval]:
    """Adjacent silences are one silence (flite writes `pau pau` at some phrase breaks)."""
    merged: list[Interval] = []
    for iv in intervals:
        if merged and iv.label == "sil" and merged[-1].label == "sil":
            merged[-1] = Interval(merged[-1].start, iv.end, "sil")
        else:
            merged.append(iv)
    return merged


def synthesize(
    flite: str, speaker: Speaker, text: str, wav_path: Path, textgrid_path: Path
) -> None:
    """Synthesize one utterance to `wav_path` and its phone alignment to `textgrid_path`."""
    wav_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [flite, *speaker.flite_options(), "-psdur", "-t", text, "-o", str(wav_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise FliteError(f"{wav_path}: flite exited {proc.returncode}: {proc.stderr.strip()}")
    info = sf.info(str(wav_path))
    if info.frames == 0:
        raise FliteError(f"{wav_path}: flite wrote no samples for {text!r}")
    duration = info.frames / info.samplerate
    intervals = fit_to_duration(parse_psdur(proc.stdout), duration)
    write_phones(textgrid_path, intervals, duration)


def _utterances(
    speaker_list: list[Speaker], per_speaker: int, seed: int
) -> Iterator[tuple[Speaker, str, str]]:
    for s_idx, speaker in enumerate(speaker_list):
        for u_idx in range(per_speaker):
            yield speaker, f"{speaker.name}_{u_idx:04d}", sentence_for(seed, s_idx, u_idx)


def generate(
    root: Path, speaker_list: list[Speaker], per_speaker: int, seed: int, jobs: int
) -> list[Candidate]:
    """Synthesize the corpus under `root` (`wav/` and `textgrids/`, one folder per speaker)."""
    flite = flite_binary()
    todo = list(_utterances(speaker_list, per_speaker, seed))
    candidates = []
    for speaker, utt, text in todo:
        wav = PurePosixPath("wav", speaker.name, f"{utt}.wav")
        grid = PurePosixPath("textgrids", speaker.name, f"{utt}.TextGrid")
        candidates.append(Candidate(utt, speaker.name, root / wav, root / grid, wav, grid, text))

    def run(i: int) -> None:
        speaker, _, text = todo[i]
        c = candidates[i]
        synthesize(flite, speaker, text, c.audio, c.textgrid)  # type: ignore[arg-type]

    # flite runs as a subprocess, so threads give real parallelism here.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = pool.map(run, range(len(todo)))
        for _ in progress(done, total=len(todo), desc="flite", unit="utt"):
            pass
    return candidates
