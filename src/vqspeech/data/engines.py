"""Offline speech synthesizers with exact phone timings: flite, Festival and espeak-ng.

Each engine renders a list of (text, prosody) for one voice and returns, per utterance, the
float32 samples at the engine's own rate and the phone intervals (in the project's inventory)
that the engine itself placed:
- flite: `-psdur` prints every segment with its end time (one process per utterance);
- Festival: the `Segment` relation of the synthesized utterance, `end` of every item (one
  process per batch, a Scheme script that synthesizes each text and prints its segments);
- espeak-ng: phoneme events of libespeak-ng with their sample position (ctypes, in a fresh
  process per batch: the library carries state from one utterance to the next),
  each phoneme lasting to the next event; one espeak phoneme that CMUdict writes as two phones
  is split evenly between them.
All three are deterministic: the same voice, text and prosody give the same samples.
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from vqspeech import phones
from vqspeech.data.textgrid import Interval
from vqspeech.voices import FESTIVAL_F0, FESTIVAL_HTS, FLITE_F0_HZ, check_voice


class SynthesisError(RuntimeError):
    """An engine is missing, or failed on an utterance; the message names which."""


@dataclass(frozen=True)
class Prosody:
    """Scales of one utterance relative to its voice: f0 mean, f0 range and duration."""

    f0_scale: float = 1.0
    f0_range: float = 1.0
    stretch: float = 1.0  # duration multiplier (1 / tempo)


@dataclass
class Rendered:
    samples: np.ndarray  # float32, mono
    sample_rate: int
    intervals: list[Interval]  # from 0 to about the end of the samples


def render(spec: str, items: Sequence[tuple[str, Prosody]], label: Sequence[str]) -> list[Rendered]:
    """Render every (text, prosody) with voice `spec`; `label` names each item in errors."""
    engine, voice = check_voice(spec)
    if engine == "flite":
        return [_flite(voice, text, p, name) for (text, p), name in zip(items, label, strict=True)]
    if engine == "festival":
        return _festival(voice, items, label)
    return _espeak_batch(voice, items, label)


def merge_silences(intervals: list[Interval]) -> list[Interval]:
    """Zero-length intervals dropped; adjacent silences are one silence."""
    merged: list[Interval] = []
    for iv in intervals:
        if iv.end <= iv.start:
            continue
        if merged and iv.label == "sil" and merged[-1].label == "sil":
            merged[-1] = Interval(merged[-1].start, iv.end, "sil")
        else:
            merged.append(iv)
    return merged


def parse_ends(tokens: Sequence[str], what: str) -> list[Interval]:
    """`name:end name:end ...` (flite's -psdur, the Festival script's output) into intervals."""
    intervals = []
    start = 0.0
    for token in tokens:
        name, sep, end_text = token.rpartition(":")
        if not sep:
            raise SynthesisError(f"{what}: unexpected segment token {token!r}")
        end = float(end_text)
        if end > start:
            intervals.append(Interval(start, end, phones.from_flite(name)))
            start = end
    return merge_silences(intervals)


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SynthesisError(
            f"{name} not found on PATH: install it with "
            f"`apt-get install -y {package}` (or run `make setup`)"
        )
    return path


def _read(path: Path, what: str) -> tuple[np.ndarray, int]:
    samples, sr = sf.read(str(path), dtype="float32", always_2d=False)
    if samples.ndim != 1 or len(samples) == 0:
        raise SynthesisError(f"{what}: the engine wrote no mono samples")
    return samples, int(sr)


def _flite(voice: str, text: str, p: Prosody, what: str) -> Rendered:
    options = ["-voice", voice]
    if p.f0_scale != 1.0:
        options += ["--setf", f"int_f0_target_mean={FLITE_F0_HZ[voice] * p.f0_scale:.1f}"]
    if p.stretch != 1.0:
        options += ["--setf", f"duration_stretch={p.stretch:.4f}"]
    with tempfile.TemporaryDirectory(prefix="vqspeech-flite-") as tmp:
        wav = Path(tmp, "out.wav")
        cmd = [_binary("flite", "flite"), *options, "-psdur", "-t", text, "-o", str(wav)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SynthesisError(f"{what}: flite exited {proc.returncode}: {proc.stderr.strip()}")
        samples, sr = _read(wav, what)
    return Rendered(samples, sr, parse_ends(proc.stdout.split(), what))


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", " ").replace('"', " ") + '"'


_FESTIVAL_SAY = """(define (vq-say file text)
  (let ((utt (utt.synth (eval (list 'Utterance 'Text text)))))
    (utt.save.wave utt file 'riff)
    (format t "@@ %s" file)
    (mapcar (lambda (s) (format t " %s:%f" (item.name s) (item.feat s "end")))
            (utt.relation.items utt 'Segment))
    (format t "\\n")))"""


def _festival_settings(voice: str, p: Prosody) -> str:
    if voice in FESTIVAL_HTS:
        rate = 1.0 / p.stretch
        return (
            f"(set! hts_engine_params (append {voice}::hts_engine_params "
            f'(list (list "-r" {rate:.4f}))))'
        )
    mean, std = FESTIVAL_F0[voice]
    return (
        f"(Parameter.set 'Duration_Stretch {p.stretch:.4f})\n"
        f"(set! int_lr_params '((target_f0_mean {mean * p.f0_scale:.2f}) "
        f"(target_f0_std {std * p.f0_range:.2f}) (model_f0_mean 170) (model_f0_std 34)))"
    )


def _festival(
    voice: str, items: Sequence[tuple[str, Prosody]], label: Sequence[str]
) -> list[Rendered]:
    festival = _binary("festival", f"festival {_FESTIVAL_PACKAGES[voice]}")
    with tempfile.TemporaryDirectory(prefix="vqspeech-festival-") as tmp:
        lines = [f"(voice_{voice})", _FESTIVAL_SAY]
        for i, (text, p) in enumerate(items):
            lines += [
                _festival_settings(voice, p),
                f'(vq-say "{tmp}/{i}.wav" {_scheme_string(text)})',
            ]
        script = Path(tmp, "batch.scm")
        script.write_text("\n".join(lines) + "\n", encoding="utf-8")
        proc = subprocess.run(
            [festival, "-b", str(script)], capture_output=True, text=True, check=False
        )
        segments = {}
        for line in proc.stdout.splitlines():
            if line.startswith("@@ "):
                file, *tokens = line[3:].split()
                segments[file] = tokens
        out = []
        for i, what in enumerate(label):
            file = f"{tmp}/{i}.wav"
            if proc.returncode != 0 or file not in segments:
                raise SynthesisError(
                    f"{what}: festival ({voice}) exited {proc.returncode} "
                    f"without it: {proc.stderr.strip()[-500:]}"
                )
            samples, sr = _read(Path(file), what)
            out.append(Rendered(samples, sr, parse_ends(segments[file], what)))
    return out


_FESTIVAL_PACKAGES = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}


# --- espeak-ng, in process -------------------------------------------------------------------

_ESPEAK_PHONEME_EVENT = 7  # espeakEVENT_PHONEME
_ESPEAK_RATE, _ESPEAK_PITCH, _ESPEAK_RANGE = 1, 3, 4  # espeak_PARAMETER
_ESPEAK_DEFAULT_WPM = 175


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT (speak_lib.h)
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Espeak:
    """libespeak-ng in synchronous mode; it is not thread-safe, so one lock serializes it."""

    def __init__(self) -> None:
        try:
            self.lib = ctypes.CDLL("libespeak-ng.so.1")
        except OSError:
            raise SynthesisError(
                "libespeak-ng not found: install it with "
                "`apt-get install -y espeak-ng` (or run `make setup`)"
            ) from None
        # AUDIO_OUTPUT_SYNCHRONOUS, default buffer, default data path, espeakINITIALIZE_DONT_EXIT
        # | espeakINITIALIZE_PHONEME_EVENTS
        self.rate = self.lib.espeak_Initialize(2, 0, None, 0x8000 | 0x0001)
        if self.rate <= 0:
            raise SynthesisError(f"espeak_Initialize failed ({self.rate})")
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, str]] = []
        self.callback = _CALLBACK(self._on_synth)  # kept referenced while the library holds it

        self.lib.espeak_SetSynthCallback(self.callback)
        self.lock = threading.Lock()

    def _on_synth(self, wav, n, events) -> int:
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:  # espeakEVENT_LIST_TERMINATED
            if events[i].type == _ESPEAK_PHONEME_EVENT:
                self.events.append((events[i].sample, events[i].id.string.decode("ascii")))
            i += 1
        return 0

    def synth(self, voice: str, text: str, p: Prosody, what: str) -> tuple[np.ndarray, list]:
        data = text.encode("utf-8")
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.encode("ascii")) != 0:
                raise SynthesisError(f"{what}: espeak-ng has no voice {voice!r}")
            wpm = round(_ESPEAK_DEFAULT_WPM / p.stretch)
            pitch = round(float(np.clip(50 + 100 * np.log2(p.f0_scale), 0, 100)))
            pitch_range = round(float(np.clip(50 * p.f0_range, 0, 100)))
            for parameter, value in (
                (_ESPEAK_RATE, wpm),
                (_ESPEAK_PITCH, pitch),
                (_ESPEAK_RANGE, pitch_range),
            ):
                self.lib.espeak_SetParameter(parameter, value, 0)
            self.chunks, self.events = [], []
            # from character 0 (POS_CHARACTER), no end position, espeakCHARS_UTF8
            status = self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)
            self.lib.espeak_Synchronize()
            if status != 0 or not self.chunks:
                raise SynthesisError(f"{what}: espeak-ng failed ({status}) on {text!r}")
            return np.concatenate(self.chunks), list(self.events)


_espeak_instance: _Espeak | None = None
_espeak_init = threading.Lock()


def _espeak_engine() -> _Espeak:
    global _espeak_instance
    with _espeak_init:
        if _espeak_instance is None:
            _espeak_instance = _Espeak()
        return _espeak_instance


def espeak_intervals(
    events: Sequence[tuple[int, str]], n_samples: int, rate: int
) -> list[Interval]:
    """Phoneme events (onset sample, espeak name) to intervals: each lasts to the next onset,
    the last to the end; before the first is silence; a two-phone mapping splits evenly."""
    out = [Interval(0.0, events[0][0] / rate, "sil")] if events and events[0][0] > 0 else []
    bounds = [s for s, _ in events[1:]] + [n_samples]
    for (start, name), end in zip(events, bounds, strict=True):
        mapped = phones.from_espeak(name)
        edges = np.linspace(start, max(end, start), len(mapped) + 1) / rate
        out += [
            Interval(float(a), float(b), ph)
            for a, b, ph in zip(edges[:-1], edges[1:], mapped, strict=True)
        ]
    return merge_silences(out)


def _espeak(voice: str, text: str, p: Prosody, what: str) -> Rendered:
    engine = _espeak_engine()
    samples, events = engine.synth(voice, text, p, what)
    if not events:
        raise SynthesisError(f"{what}: espeak-ng reported no phonemes for {text!r}")
    pcm = samples.astype(np.float32) / 32768.0
    return Rendered(pcm, engine.rate, espeak_intervals(events, len(samples), engine.rate))


def _espeak_batch(
    voice: str, items: Sequence[tuple[str, Prosody]], label: Sequence[str]
) -> list[Rendered]:
    """A batch in a fresh process: libespeak-ng carries state from one utterance to the next
    (its output depends on what it said before), so a batch is deterministic only from a fresh
    start; `python -m vqspeech.data.engines` is that process."""
    with tempfile.TemporaryDirectory(prefix="vqspeech-espeak-") as tmp:
        request = {
            "voice": voice,
            "out": tmp,
            "items": [
                {"text": t, "prosody": dataclasses.asdict(p), "label": name}
                for (t, p), name in zip(items, label, strict=True)
            ],
        }
        proc = subprocess.run(
            [sys.executable, "-m", "vqspeech.data.engines"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
            raise SynthesisError(last[0].removeprefix("SynthesisError: "))
        out = []
        for i, line in enumerate(proc.stdout.splitlines()):
            intervals = [Interval(a, b, lab) for a, b, lab in json.loads(line)]
            samples, sr = _read(Path(tmp, f"{i}.wav"), label[i])
            out.append(Rendered(samples, sr, intervals))
    return out


def _espeak_worker() -> None:
    request = json.load(sys.stdin)
    try:
        for i, item in enumerate(request["items"]):
            r = _espeak(request["voice"], item["text"], Prosody(**item["prosody"]), item["label"])
            sf.write(
                str(Path(request["out"], f"{i}.wav")), r.samples, r.sample_rate, subtype="PCM_16"
            )
            print(json.dumps([(iv.start, iv.end, iv.label) for iv in r.intervals]), flush=True)
    except SynthesisError as exc:
        print(f"SynthesisError: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    _espeak_worker()
