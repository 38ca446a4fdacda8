"""What the synthesize stage resynthesizes: held-out utterances chosen by seed, their excerpts, the
conversion targets, and the versions (original, reconstruction, conversions) written per utterance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vqspeech.features.shards import Utterance
from vqspeech.phones import SILENCES

SAMPLES_PER_LATENT = 320


SR = 16000


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
