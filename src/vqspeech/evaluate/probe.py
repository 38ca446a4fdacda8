"""How much speaker information a representation keeps: a linear speaker-ID probe.

For every held-out speaker with at least two utterances, a seeded share (`eval.probe.fit_share`)
of their utterances is the probe's fit set and the rest its score set, so the probe must tell the
speaker from frames of utterances it has not seen (a probe scored on frames of its own utterances
would also learn the utterances' channel and content). Up to `eval.probe.frames` speech frames
(no sil/sp/spn) per speaker and side are drawn, seeded. The probe is multinomial logistic
regression (scikit-learn) on the standardized vectors; its score is the accuracy on the score
set, beside chance: the share of the score set's most frequent speaker (1 / speakers when
balanced). A representation free of speaker information scores chance; the MFCC frames are the
reference a learned representation should fall below.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vqspeech.params import ProbeParams


@dataclass(frozen=True)
class ProbePlan:
    """The frames a probe fits on and scores on (rows of the frame table, sorted), and their
    speakers (an index per speaker)."""

    rows: np.ndarray  # int64 [n]: fit rows and score rows, sorted together
    fit: np.ndarray  # bool [n]: this row is in the fit set
    speaker: np.ndarray  # int64 [n]
    speakers: int

    @property
    def chance(self) -> float:
        """The score set's most frequent speaker's share."""
        counts = np.bincount(self.speaker[~self.fit], minlength=self.speakers)
        return float(counts.max() / counts.sum())


def plan(
    speaker: np.ndarray,
    utterance: np.ndarray,
    speech: np.ndarray,
    p: ProbeParams,
    seed: int,
) -> ProbePlan | None:
    """The probe's frames: `speaker` and `utterance` label each row of the frame table (any
    hashable labels), `speech` is true on speech frames. A speaker takes part when they have two
    utterances and speech frames on both sides; None when fewer than two speakers do (nothing
    to tell apart)."""
    rng = np.random.default_rng([seed, 31])
    names = sorted(set(speaker.tolist()))
    rows, fit, who = [], [], []
    for s, name in enumerate(names):
        mine = speaker == name
        utts = np.array(sorted(set(utterance[mine].tolist())))
        if len(utts) < 2:
            continue
        utts = utts[rng.permutation(len(utts))]
        n_fit = min(len(utts) - 1, max(1, round(p.fit_share * len(utts))))
        sides = [
            np.flatnonzero(mine & speech & np.isin(utterance, chosen))
            for chosen in (utts[:n_fit], utts[n_fit:])
        ]
        if not all(len(c) for c in sides):  # a class the probe never sees, or never scores
            continue
        for side, candidates in zip((True, False), sides, strict=True):
            take = min(p.frames, len(candidates))
            rows.append(np.sort(rng.choice(candidates, take, replace=False)))
            fit.append(np.full(take, side))
            who.append(np.full(take, s))
    kept = len(who) // 2
    if kept < 2:
        return None
    all_rows = np.concatenate(rows)
    order = np.argsort(all_rows, kind="stable")
    speaker_ids = np.unique(np.concatenate(who), return_inverse=True)[1]
    return ProbePlan(
        all_rows[order].astype(np.int64),
        np.concatenate(fit)[order],
        speaker_ids[order].astype(np.int64),
        kept,
    )


def accuracy(vectors: np.ndarray, probe: ProbePlan, seed: int) -> float:
    """The probe's accuracy on the score set; `vectors` [len(probe.rows), D] are the rows'."""
    if len(vectors) != len(probe.rows):
        raise ValueError(f"{len(vectors)} vectors for {len(probe.rows)} probe rows")
    x = np.asarray(vectors, dtype=np.float64)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(x[probe.fit], probe.speaker[probe.fit])
    return float(model.score(x[~probe.fit], probe.speaker[~probe.fit]))
