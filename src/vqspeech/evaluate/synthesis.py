"""The synthesize stage's library: choosing what to resynthesize, objective checks of the
synthesized speech, and the spectrogram comparison.

- `mel_cepstra`: c1..c24 of the natural-log amplitude of an 80-band mel spectrum (25 ms windows
  every 10 ms, the feature frames), as its cosine series ln A_k = c0 + 2 sum_d c_d cos(pi d (k +
  1/2) / 80), the convention behind MCD's factor 2 (an orthonormal DCT would give coefficients
  sqrt(160) times larger). c0 (energy) is left out, as usual. SPTK's all-pass mel-cepstra are
  close but not identical: compare values within this project and against the same-run floor;
- `mcd`: mel-cepstral distortion in dB, (10 / ln 10) sqrt(2 sum_d (c_d - c'_d)^2) averaged over
  frames (optionally only the frames a mask selects: the stage scores speech frames, because in
  digital silence any noise floor gives arbitrary log differences). A reconstruction is decoded
  from the original's own latents, so its frames line up with the original's one to one;
  sequences whose lengths differ by more than `max_offset` frames are an error rather than
  silently truncated;
- `SpeakerClassifier`: logistic regression on per-utterance MFCC mean and std, fitted on the
  training speakers; for voice conversion, the share of converted utterances it assigns to the
  target speaker.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.model.wavenet import mulaw_decode, mulaw_encode
from vqspeech.phones import SILENCES

SAMPLES_PER_LATENT = 320
SR = 16000
log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from vqspeech.model.vqvae import VQVAE

MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def mel_cepstra(audio: np.ndarray, sr: int = 16000, n: int = 24) -> np.ndarray:
    """[T, n] mel-cepstral coefficients c1..cn (no c0), 25 ms windows every 10 ms."""
    import librosa

    power = librosa.feature.melspectrogram(
        y=np.asarray(audio, dtype=np.float32),
        sr=sr,
        n_fft=int(0.025 * sr),
        hop_length=int(0.01 * sr),
        n_mels=80,
        center=False,
    )
    return cepstra(0.5 * np.log(np.maximum(power, 1e-10)).T, n)


def cepstra(log_amplitude: np.ndarray, n: int = 24) -> np.ndarray:
    """[T, K] log amplitudes -> [T, n] c1..cn of their cosine series (see the module doc)."""
    import scipy.fft

    k = log_amplitude.shape[-1]
    return scipy.fft.dct(log_amplitude, type=2, axis=-1)[..., 1 : n + 1] / (2 * k)


def mcd(
    reference: np.ndarray, test: np.ndarray, max_offset: int = 2, mask: np.ndarray | None = None
) -> float:
    """Mean mel-cepstral distortion (dB) between frame-aligned cepstra [T, D] and [T', D], over
    the frames where `mask` (length >= min(T, T')) is true, or all frames."""
    if reference.shape[1] != test.shape[1]:
        raise ValueError(f"cepstra of {reference.shape[1]} and {test.shape[1]} dimensions")
    if abs(len(reference) - len(test)) > max_offset:
        raise ValueError(f"{len(reference)} and {len(test)} frames: not aligned frame by frame")
    n = min(len(reference), len(test))
    keep = np.ones(n, bool) if mask is None else np.asarray(mask[:n], dtype=bool)
    if len(keep) < n or not keep.any():
        raise ValueError(f"mask of {len(keep)} frames selects none of {n} (or is too short)")
    diff = reference[:n][keep] - test[:n][keep]
    return float(np.mean(MCD_SCALE * np.sqrt((diff**2).sum(axis=1))))


def utterance_vector(mfcc: np.ndarray) -> np.ndarray:
    """Per-utterance summary for speaker identification: mean and std of each coefficient."""
    return np.concatenate([mfcc.mean(axis=0), mfcc.std(axis=0)])


class SpeakerClassifier:
    """Logistic regression on utterance vectors (standardized), seeded."""

    def __init__(self, seed: int = 0) -> None:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        classifier = LogisticRegression(max_iter=2000, random_state=seed)
        self.model = make_pipeline(StandardScaler(), classifier)

    def fit(self, utterances: Sequence[np.ndarray], speakers: Sequence[str]) -> SpeakerClassifier:
        if len(set(speakers)) < 2:
            raise ValueError("a speaker classifier needs at least two speakers")
        self.model.fit(np.stack([utterance_vector(u) for u in utterances]), list(speakers))
        return self

    def predict(self, utterances: Sequence[np.ndarray]) -> list[str]:
        return list(self.model.predict(np.stack([utterance_vector(u) for u in utterances])))

    def target_share(self, utterances: Sequence[np.ndarray], targets: Sequence[str]) -> float:
        """Share of utterances assigned to their target speaker (voice-conversion success)."""
        predicted = self.predict(utterances)
        return float(np.mean([p == t for p, t in zip(predicted, targets, strict=True)]))


def choose(
    utterances: Sequence[Utterance],
    count: int,
    seconds: float,
    rng: np.random.Generator,
    lead_latents: int = 5,
) -> tuple[list[Utterance], list[int], int]:
    """`count` utterances (seeded, in id order: `choose_ids`) and their `excerpts`."""
    by_id = {u.utterance_id: u for u in utterances}
    chosen = [by_id[i] for i in choose_ids(list(by_id), count, rng)]
    return (chosen, *excerpts(chosen, seconds, lead_latents))


def choose_ids(ids: Sequence[str], count: int, rng: np.random.Generator) -> list[str]:
    """`count` of the held-out utterance ids (seeded, in id order); ValueError when there are
    fewer than `count`."""
    pool = sorted(ids)
    if len(pool) < count:
        raise ValueError(f"{count} utterances to synthesize but only {len(pool)} held out")
    return [pool[i] for i in sorted(rng.choice(len(pool), size=count, replace=False))]


def excerpts(
    chosen: Sequence[Utterance], seconds: float, lead_latents: int = 5
) -> tuple[list[int], int]:
    """The latent each excerpt starts at (`lead_latents`, at most a quarter of the excerpt,
    before the first speech frame, so excerpts are not mostly leading silence) and the
    excerpts' common length in latents: `seconds` worth (50 per second), or as much as the
    shortest chosen utterance has. ValueError when one lacks its audio."""
    wanted = round(seconds * 50)
    lead = min(lead_latents, wanted // 4)  # a short excerpt still gets mostly speech
    starts = []
    for u in chosen:
        if u.audio is None:
            raise ValueError(
                f"{u.utterance_id}: no audio in the feature shards (features.audio: false)"
            )
        speech = [i for i, p in enumerate(u.phones) if p not in SILENCES]
        starts.append(max(0, (speech[0] if speech else 0) // 2 - lead))
    n_latents = min(
        wanted, *(len(u.features) // 2 - s for u, s in zip(chosen, starts, strict=True))
    )
    return starts, n_latents


def targets(
    speakers: Sequence[str], count: int, per_utterance: int, rng: np.random.Generator
) -> list[list[str]]:
    """For each of `count` utterances, `per_utterance` distinct target speakers (seeded)."""
    if per_utterance > len(speakers):
        raise ValueError(f"{per_utterance} conversion targets but {len(speakers)} train speakers")
    return [
        [speakers[i] for i in sorted(rng.choice(len(speakers), per_utterance, replace=False))]
        for _ in range(count)
    ]


def classifier_picks(
    speakers: Mapping[str, str], per_speaker: int, holdout: float, rng: np.random.Generator
) -> list[tuple[str, str, bool]]:
    """(speaker, utterance_id, held out) of up to `per_speaker` utterances of each speaker of
    `speakers` (utterance_id -> speaker, seeded, by speaker), the last `holdout` share of each
    speaker's pick held out (at least one); ValueError for a speaker with fewer than 2."""
    by_speaker: dict[str, list[str]] = {}
    for uid, speaker in speakers.items():
        by_speaker.setdefault(speaker, []).append(uid)
    out = []
    for speaker in sorted(by_speaker):
        pool = sorted(by_speaker[speaker])
        pick = [pool[i] for i in rng.choice(len(pool), min(per_speaker, len(pool)), False)]
        if len(pick) < 2:
            raise ValueError(f"speaker {speaker}: {len(pick)} utterance(s) with audio, need 2")
        n_test = max(1, round(holdout * len(pick)))
        out += [(speaker, uid, i >= len(pick) - n_test) for i, uid in enumerate(pick)]
    return out


def classifier_split(
    utterances: Sequence[Utterance],
    per_speaker: int,
    holdout: float,
    samples: int,
    rng: np.random.Generator,
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(fit, test) lists of (speaker, float audio) of the utterances with audio that
    `classifier_picks` picks, each cut to its first `samples` samples (the length of what is
    synthesized)."""
    by_id = {u.utterance_id: u for u in utterances if u.audio is not None}
    picks = classifier_picks({i: u.speaker for i, u in by_id.items()}, per_speaker, holdout, rng)
    return classifier_audio(picks, by_id, samples)


def classifier_audio(
    picks: Sequence[tuple[str, str, bool]], utterances: Mapping[str, Utterance], samples: int
) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray]]]:
    """(fit, test) of `classifier_picks`: each utterance's first `samples` samples, as float."""
    fit, test = [], []
    for speaker, uid, held in picks:
        u = utterances[uid]
        if u.audio is None:
            raise ValueError(f"{uid}: no audio in the feature shards (features.audio: false)")
        (test if held else fit).append((speaker, u.audio[:samples].astype(np.float32) / 32768))
    return fit, test


def classifier_viable(speakers: Iterable[str]) -> bool:
    """Whether there are 2 or more speakers with 2 or more utterances each (warns if not: the
    classifier's metrics are then null)."""
    counts = Counter(speakers)
    if len(counts) < 2 or min(counts.values()) < 2:
        log.warning(
            "speaker classifier skipped (its metrics are null): it needs 2 or more training "
            "speakers with 2 or more utterances each, found %s",
            dict(counts),
        )
        return False
    return True


def originals(
    chosen: Sequence[Utterance], starts: Sequence[int], samples: int
) -> list[list[tuple[str, np.ndarray]]]:
    """Per utterance [("original", float audio)]: `samples` samples from latent `start`."""
    up = SAMPLES_PER_LATENT
    return [
        [("original", u.audio[s * up : s * up + samples].astype(np.float32) / 32768)]
        for u, s in zip(chosen, starts, strict=True)
    ]


def add_generated(
    versions: list[list[tuple[str, np.ndarray]]],
    generated: Sequence[Sequence[np.ndarray]],
    goals: Sequence[Sequence[str]],
) -> None:
    """Append each utterance's reconstruction and its conversions ("as <speaker>")."""
    for uid_versions, audio, goal in zip(versions, generated, goals, strict=True):
        uid_versions.append(("reconstruction", audio[0]))
        uid_versions += [(f"as {t}", a) for t, a in zip(goal, audio[1:], strict=True)]


def speech_masks(chosen: Sequence[Utterance], starts: Sequence[int]) -> list[np.ndarray]:
    """Per utterance, whether each 10 ms frame from latent `start` on is speech."""
    return [
        np.array([ph not in SILENCES for ph in u.phones[2 * s :]])
        for u, s in zip(chosen, starts, strict=True)
    ]


def spectrogram_figure(
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]], path: Path, sr: int = 16000
) -> None:
    """One row per utterance, one column per version (original, reconstruction, conversions):
    log-magnitude spectrograms (512-point STFT, 10 ms hop) on one colour scale per row."""
    import librosa
    import matplotlib.pyplot as plt

    from vqspeech.report.plots import save

    cols = max(len(versions) for _, versions in rows)
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(3.6 * cols, 2.6 * len(rows)), squeeze=False, sharey=True
    )
    for r, (title, versions) in enumerate(rows):
        specs = [
            np.abs(librosa.stft(np.asarray(a, np.float32), n_fft=512, hop_length=160))
            for _, a in versions
        ]
        ref = max(float(x.max()) for x in specs) or 1.0
        for c in range(cols):
            ax = axes[r, c]
            if c >= len(versions):
                ax.axis("off")
                continue
            db = librosa.amplitude_to_db(specs[c], ref=ref)
            ax.imshow(
                db,
                origin="lower",
                aspect="auto",
                cmap="magma",
                vmin=-80,
                vmax=0,
                extent=(0, len(versions[c][1]) / sr, 0, sr / 2000),
            )
            ax.set_title(f"{title}: {versions[c][0]}" if c == 0 else versions[c][0], fontsize=9)
            if c == 0:
                ax.set_ylabel("kHz")
            if r == len(rows) - 1:
                ax.set_xlabel("time (s)")
    fig.tight_layout()
    save(fig, path)


def generate(
    model: VQVAE,
    chosen: Sequence[Utterance],
    starts: Sequence[int],
    goals: Sequence[Sequence[str]],
    speakers: Sequence[str],
    n_lat: int,
    norm: Normalizer,
    seed: int,
    bar: Any,
) -> tuple[list[list[np.ndarray]], dict[str, object]]:
    """The reconstruction (mean speaker embedding) and the conversions to `goals` of the
    `n_lat` latents from `starts` of each utterance, generated in one batch, sample by sample;
    `bar.update(1)` after every latent. Returns (per utterance: [reconstruction, *conversions]
    as float audio, the generation speed)."""
    device = next(model.parameters()).device
    latents = []
    for u, s in zip(chosen, starts, strict=True):
        x = torch.from_numpy(norm(u.features))[None].to(device)
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
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    # generate() reports after every latent's samples
    classes = model.decoder.generate(
        batch_latents, spk_vectors, generator, progress=lambda t: bar.update(1)
    )
    seconds = time.perf_counter() - start
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
    log.info(
        "generated %d x %d samples in %.1f s (%s samples/s in all)",
        len(rows),
        steps,
        seconds,
        speed["samples_per_second"],
    )
    return out, speed


def score(
    versions: Sequence[Sequence[tuple[str, np.ndarray]]],
    speech: Sequence[np.ndarray],
    goals: Sequence[Sequence[str]],
    fit: Sequence[tuple[str, np.ndarray]],
    test: Sequence[tuple[str, np.ndarray]],
    seed: int,
    decoder: str,
    n: int,
    speed: dict | None,
) -> dict:
    """metrics/synthesis.json. `versions` per utterance: [("original", audio)] (a deconv
    model) or [original, reconstruction, *conversions] (wavenet); `speech` its speech-frame
    masks (MCD is over speech frames); `fit`/`test` (speaker, audio) pairs for the speaker
    classifier (empty: its metrics are null)."""

    def ceps(audio: np.ndarray) -> np.ndarray:
        return mel_cepstra(audio, SR)

    def mean_mcd(triples) -> float:
        values = [mcd(ceps(a), ceps(b), mask=m) for a, b, m in triples]
        return round(float(np.mean(values)), 3)

    classifier = None
    if fit:
        classifier = SpeakerClassifier(seed)
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
    recon_for_goals = [r for r, g in zip(recon, goals, strict=wavenet) for _ in g]  # [] for deconv
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
