"""Scoring one system's codes against the phone labels of the same frames: every clustering and
boundary metric on all and on speech frames (`score_codes`), the bitrate's symbol rate, and the
headline numbers `dvc metrics show` puts side by side (`headline`)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from vqspeech.evaluate.metrics import (
    boundary_scores,
    mean_run_length,
    scores,
)
from vqspeech.features.shards import Utterance
from vqspeech.phones import SILENCES

# all frames; the rest (speech frames, AMI, ARI, ..., ABX cell counts) is in reports/eval.json
HEADLINE = (
    "pnmi",
    "nmi",
    "ami",
    "phone_purity",
    "one_to_one",
    "boundary_f1",
    "code_perplexity",
    "codes_used",
    "bitrate",
    "mean_run_length",
)


def score_system(
    frames: pd.DataFrame, tolerance: int, symbols_per_second: float
) -> dict[str, dict[str, float]]:
    """Metrics of one system; `frames` has utterance_id, frame, phone, code (one row a latent);
    `symbols_per_second` is the code rate for the bitrate (see `symbol_rate`)."""
    frames = frames.sort_values(["utterance_id", "frame"])
    ids, names = phone_labels(frames["phone"])
    utt = frames["utterance_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, utt[1:] != utt[:-1]]) if len(utt) else np.zeros(0, int)
    offsets = np.r_[starts, len(utt)].astype(np.int64)
    return score_codes(
        ids, names, frames["code"].to_numpy(), offsets, tolerance, symbols_per_second
    )


def phone_labels(phones: pd.Series | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Phone labels as (ids [N], names): ids number the names in sorted order, as np.unique
    would, so every metric of the ids is the metric of the labels, to the last bit."""
    if isinstance(phones, pd.Series) and isinstance(phones.dtype, pd.CategoricalDtype):
        cats = np.asarray(phones.cat.categories).astype(str)
        order = np.argsort(cats, kind="stable")
        names = cats[order]
        rank = np.empty(len(cats), dtype=np.int64)
        rank[order] = np.arange(len(cats))
        return rank[phones.cat.codes.to_numpy()], names
    names, ids = np.unique(np.asarray(phones).astype(str), return_inverse=True)
    return ids.astype(np.int64), names


def score_codes(
    phone_ids: np.ndarray,
    phone_names: np.ndarray,
    codes: np.ndarray,
    offsets: np.ndarray,
    tolerance: int,
    symbols_per_second: float,
) -> dict[str, dict[str, float]]:
    """`score_system` of label arrays: phone ids (into `phone_names`) and codes per latent,
    utterance u the rows offsets[u]:offsets[u + 1]."""
    bounds = list(itertools.pairwise(offsets))
    phone_seqs = [phone_names[phone_ids[a:b]] for a, b in bounds]
    code_seqs = [codes[a:b] for a, b in bounds]
    all_frames = scores(phone_ids, codes, symbols_per_second)
    all_frames.update(boundary_scores(phone_seqs, code_seqs, tolerance))
    all_frames["mean_run_length"] = mean_run_length(code_seqs)
    speech = ~np.isin(phone_names, SILENCES)[phone_ids]
    speech_frames = scores(phone_ids[speech], codes[speech], symbols_per_second)
    speech_frames.update(boundary_scores(phone_seqs, code_seqs, tolerance, speech_only=True))
    return {"all": all_frames, "speech": speech_frames}


def symbol_rate(
    symbols: int, utterances: Iterable[Utterance], hop_s: float = 0.01, win_s: float = 0.025
) -> float:
    """Symbols per second of real audio, as ZeroSpeech 2019's bitrate counts them: the number
    of code frames over the total duration the utterances' features cover ((frames - 1) hops
    plus one window each: the audio the codes describe, within one 10 ms hop of the file)."""
    return symbol_rate_of(symbols, [len(u.features) for u in utterances], hop_s, win_s)


def symbol_rate_of(
    symbols: int, frames: Sequence[int] | np.ndarray, hop_s: float = 0.01, win_s: float = 0.025
) -> float:
    """`symbol_rate` of the utterances' feature frame counts."""
    seconds = sum((int(n) - 1) * hop_s + win_s for n in frames if n)
    if seconds <= 0:
        raise ValueError("no audio to divide the symbols by")
    return symbols / seconds


def rounded(d: dict, digits: int = 4) -> dict:
    """Floats of a nested dict rounded, for a readable metrics file; NaN (a score with nothing to
    score, e.g. across-speaker ABX with one speaker) becomes null, which JSON can hold."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out[k] = rounded(v, digits)
        elif isinstance(v, float):
            out[k] = None if math.isnan(v) else round(v, digits)
        else:
            out[k] = v
    return out


def headline(result: dict[str, dict]) -> dict[str, dict]:
    """The declared metrics (metrics/eval.json): HEADLINE of all frames per system, ABX within
    and across, the speaker probe's accuracies and chance; `random` only as a chance level
    (PNMI, NMI, phone purity)."""
    out: dict[str, dict] = {}
    for system, r in result.items():
        keys = ("pnmi", "nmi", "phone_purity") if system == "random" else HEADLINE
        out[system] = {key: r["all"][key] for key in keys} if "all" in r else {}
        if "k" in r:  # kmeans_mfcc_matched: the K' it was fitted with
            out[system]["k"] = r["k"]
        if "abx" in r:
            out[system]["abx"] = {
                rep: {side: v[side] for side in ("within", "across")} for rep, v in r["abx"].items()
            }
        if "speaker_probe" in r:
            out[system]["speaker_probe"] = dict(r["speaker_probe"])
    return out
