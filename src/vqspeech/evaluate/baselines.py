"""Scoring the codes beside baselines on the same frames (docs/design.md "Evaluation").

Systems, all at the latents' 20 ms rate and joined on (utterance_id, frame):
- `vqvae`: the trained model's codes (data/codes); ABX of its continuous latents and of its codes
  (the key names the system of learned units whatever `model.family`, so a VQ-CPC run's metrics
  line up with a VQ-VAE run's in `dvc metrics diff`; the run's params say which it was);
- `kmeans_mfcc`: k-means with the same K on MFCC frames, fitted on train frames; a 20 ms frame is
  the mean of the two normalized 10 ms frames the latent stands for; ABX of its centroids;
- `mfcc`: ABX of MFCC frames themselves, at their native 10 ms (`frames_10ms`, the rate
  libri-light's published MFCC numbers use) and paired to 20 ms as k-means sees them
  (`frames_20ms`); items at each rate are the phone intervals' own frames at that rate;
- `kmeans_mfcc_matched`: k-means on MFCC at equal used codes: its K' chosen so its codes'
  perplexity on the held-out frames comes closest to the learned codes' (same K when they
  already agree; `k` and every K' tried are reported);
- `kmeans_latent`: k-means with the same K on the VQ-VAE's continuous latents, fitted on a sample
  of train latents (data/codes/train_latents.parquet), as HuBERT clusters its hidden features;
- `<system>_dpdp`: each system above re-segmented by duration-penalized dynamic programming
  (vqspeech.evaluate.dpdp; `eval.dpdp`), reported beside its raw codes;
- `random`: uniform codes with the same K (clustering and boundary metrics at chance level).
Each is scored on all frames and on speech frames (without sil/sp/spn). `evaluate` returns the
full grid (reports/eval.json); `headline` the few numbers `dvc metrics show` puts side by side.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import MiniBatchKMeans

from vqspeech.evaluate import abx, dpdp
from vqspeech.evaluate.heldout import Chunk, CodedSplit, Rows, Spill, pair_frames
from vqspeech.evaluate.metrics import (
    boundary_scores,
    entropy_bits,
    mean_run_length,
    scores,
)
from vqspeech.evaluate.sampling import BottomK
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.params import EvalParams
from vqspeech.phones import SILENCES

log = logging.getLogger(__name__)
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


def train_frames(
    train: Iterable[Utterance], norm: Normalizer, seed: int, max_frames: int = 200_000
) -> np.ndarray:
    """What the MFCC k-means is fitted on: normalized, paired train frames (a seeded sample of
    at most max_frames, `sampling.BottomK`: memory bounded by the sample, not the split)."""
    sample = BottomK(max_frames, seed)
    for u in train:
        sample.add(u.utterance_id, pair_frames(norm(u.features, np.float64)))
    return sample.result()


def fit_kmeans(
    train: Iterable[Utterance], norm: Normalizer, k: int, seed: int, max_frames: int = 200_000
) -> MiniBatchKMeans:
    """k-means on `train_frames`."""
    return kmeans(train_frames(train, norm, seed, max_frames), k, seed)


def code_perplexity(codes: np.ndarray) -> float:
    """2 ** (entropy in bits) of the codes' distribution: `code_perplexity` of the metrics."""
    return 2.0 ** entropy_bits(np.unique(np.asarray(codes), return_counts=True)[1])


def matched_kmeans(
    km: MiniBatchKMeans,
    train: np.ndarray,
    predict: Callable[[MiniBatchKMeans], np.ndarray],
    target: float,
    seed: int,
    refits: int = 2,
) -> tuple[MiniBatchKMeans, dict[int, float], np.ndarray]:
    """k-means on the same train frames at the K' whose codes' perplexity on the held-out frames
    (`predict(fit)`: a fit's codes of them) comes closest to `target` (the learned codes'): the
    comparison at equal used codes. Starting from `km` (K codes), K' is scaled by
    target / perplexity (which grows about linearly with K') up to `refits` times, stopping
    when it repeats. Returns the closest fit, every (K', perplexity) tried and its codes."""
    fits, codes = {km.n_clusters: km}, {km.n_clusters: predict(km)}
    tried = {km.n_clusters: code_perplexity(codes[km.n_clusters])}
    k = km.n_clusters
    for _ in range(refits):
        k = max(2, round(k * target / tried[k]))
        if k in tried:
            break
        fits[k] = kmeans(train, k, seed)
        codes[k] = predict(fits[k])
        tried[k] = code_perplexity(codes[k])
    best = min(tried, key=lambda c: (abs(tried[c] - target), c))
    return fits[best], tried, codes[best]


def kmeans(x: np.ndarray, k: int, seed: int) -> MiniBatchKMeans:
    """The one k-means of the baselines (MiniBatchKMeans, 3 inits, batches of 4096, seeded)."""
    return MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096).fit(x)


def paired_features(utts: Iterable[Utterance], norm: Normalizer) -> tuple[pd.DataFrame, np.ndarray]:
    """(utterance_id, frame) and the normalized, paired MFCC vector of every 20 ms frame."""
    keys, vectors = [], []
    for u in utts:
        x = pair_frames(norm(u.features, np.float64))
        keys.append(pd.DataFrame({"utterance_id": u.utterance_id, "frame": np.arange(len(x))}))
        vectors.append(x)
    if not keys:
        raise ValueError("no utterances")
    return pd.concat(keys, ignore_index=True), np.concatenate(vectors)


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


def native_features(utts: Iterable[Utterance], norm: Normalizer) -> tuple[pd.DataFrame, np.ndarray]:
    """(utterance_id, frame) sorted, and the normalized 10 ms feature vector of every frame."""
    ordered = sorted(utts, key=lambda u: u.utterance_id)
    if not ordered:
        raise ValueError("no utterances")
    keys = pd.concat(
        [
            pd.DataFrame({"utterance_id": u.utterance_id, "frame": np.arange(len(u.features))})
            for u in ordered
        ],
        ignore_index=True,
    )
    return keys, np.concatenate([norm(u.features, np.float64) for u in ordered])


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


def abx_items(
    intervals: pd.DataFrame,
    ids: np.ndarray,
    counts: np.ndarray,
    stride: int,
    max_group: int,
    seed: int,
) -> abx.Items:
    """ABX items of the phone intervals over a frame table of utterances `ids` with `counts`
    frames each, at `stride` 10 ms frames per frame, capped per group (vqspeech.evaluate.abx)."""
    items = abx.items_from_layout(intervals, ids, counts, abx.FrameGrid.of(stride))
    cut, groups = abx.over_cap(items, max_group)
    log.info(
        "ABX at %d ms: %d items of %d intervals; %d of %d (context, speaker, phone) groups "
        "over %d items, cut",
        10 * stride,
        len(items),
        len(intervals),
        cut,
        groups,
        max_group,
    )
    return abx.cap_groups(items, max_group, seed)


def _ranges(offsets: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The rows of utterances `which` (sorted), utterance u being rows offsets[u]:offsets[u+1]."""
    parts = [np.arange(offsets[u], offsets[u + 1]) for u in which]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def evaluate(
    held: CodedSplit,
    codebook: np.ndarray,
    km: MiniBatchKMeans,
    ev: EvalParams,
    *,
    intervals: pd.DataFrame,
    seed: int,
    scratch: Path,
    train_latents: np.ndarray | None = None,
    train_mfcc: np.ndarray | None = None,
) -> dict[str, dict]:
    """Every system's scores on the same frames (see the module docstring), the full grid.

    held: the coded frames (`held.layout`: one row per 20 ms latent, utterance_id, frame,
    speaker, phone, code) and their latents and MFCC, read a shard at a time in passes (one for
    every system's codes and what ABX and DPDP calibration need, one for DPDP, one per extra
    k-means of `kmeans_mfcc_matched`); intervals: the utterances' phone intervals (ABX items);
    km fitted with K = len(codebook); ev: `params.eval` (boundary tolerance, `abx`, `dpdp`);
    train_latents: the sample `kmeans_latent` is fitted on (None: no such system);
    `eval.dpdp.mean_latents` > 0 adds each system re-segmented by DPDP to segments of that mean
    length in latents (`<system>_dpdp`, vqspeech.evaluate.dpdp); train_mfcc: the
    frames km was fitted on (`train_frames`), which adds `kmeans_mfcc_matched`, k-means on MFCC
    at the learned codes' perplexity (`matched_kmeans`; None: no such system). In memory: one
    integer per latent per system, the calibration utterances, and one block of the ABX items
    (`abx.blocks`: whole contexts, at most `eval.abx.block_mb` MiB of frames and DTW distances); the
    items' unit vectors wait in `scratch` (a folder of the caller's, emptied by it)."""
    layout, k = held.layout, len(codebook)
    n, offsets = len(layout.frames), layout.offsets
    with_latents = None
    if train_latents is not None:
        with_latents = kmeans(train_latents.astype(np.float64), k, seed)
    # what ABX and the DPDP calibration need of the vectors, known from the frame table: the
    # ABX items' frames, unit vectors in blocks of whole contexts on disk, a block in memory
    budget, max_group = ev.abx.block_mb * 2**20, ev.abx.max_group
    width = max(codebook.shape[1], len(held.norm.mean))  # the widest representation at 20 ms
    blocks_20 = abx.blocks(
        abx_items(intervals, layout.ids, layout.counts, 2, max_group, seed), 4 * width, budget
    )
    blocks_10 = abx.blocks(
        abx_items(intervals, layout.ids, held.n_frames, 1, max_group, seed),
        4 * len(held.norm.mean),
        budget,
    )
    log.info(
        "ABX items in %d blocks at 20 ms, %d at 10 ms (eval.abx.block_mb %g)",
        len(blocks_20),
        len(blocks_10),
        ev.abx.block_mb,
    )
    spills = {
        name: Spill([rows for _, rows in blocks], scratch, name)
        for name, blocks in (("latent", blocks_20), ("mfcc", blocks_20), ("native", blocks_10))
    }
    dp = ev.dpdp
    pick = dpdp.calibration_pick(len(layout.ids), seed) if dp.mean_latents > 0 else np.zeros(0, int)
    cal_rows = _ranges(offsets, pick)
    want = {"latent": Rows(cal_rows), "mfcc": Rows(cal_rows)}
    mfcc_codes, latent_codes = [], []
    for c in held.chunks(native=True):
        mfcc_codes.append(km.predict(c.paired).astype(np.int64))
        if with_latents is not None:
            latent_codes.append(with_latents.predict(c.latents.astype(np.float64)).astype(np.int64))
        for name, part, rows in (
            ("latent", c.latents, c.rows),
            ("mfcc", c.paired, c.rows),
            ("native", c.native, c.native_rows),
        ):
            spills[name].add(abx.unit(part), rows)
        want["latent"].add(c.latents, c.rows)
        want["mfcc"].add(c.paired, c.rows)
    got = {f"cal_{name}": rows.result() for name, rows in want.items()}
    # system -> (codes, which vectors its codes quantize, its code vectors)
    systems: dict[str, tuple[np.ndarray, str | None, np.ndarray | None]] = {
        "vqvae": (layout.frames["code"].to_numpy().astype(np.int64), "latent", codebook),
        "kmeans_mfcc": (np.concatenate(mfcc_codes), "mfcc", km.cluster_centers_),
    }
    if with_latents is not None:
        systems["kmeans_latent"] = (
            np.concatenate(latent_codes),
            "latent",
            with_latents.cluster_centers_,
        )
    penalties = {}
    if dp.mean_latents > 0:
        raw = list(systems)
        books = {name: systems[name][2] for name in raw}
        cal_offsets = np.r_[0, np.cumsum(np.diff(offsets)[pick])].astype(np.int64)
        cal = {name: got[f"cal_{systems[name][1]}"] for name in raw}
        penalties = dpdp.penalties(cal, books, cal_offsets, dp)

        def quantized(c: Chunk) -> dict[str, np.ndarray]:  # what each system's codes quantize
            return {name: c.latents if systems[name][1] == "latent" else c.paired for name in raw}

        chunks = ((quantized(c), c.offsets) for c in held.chunks())
        segmented = dpdp.resegment(chunks, books, penalties, dp.max_latents)
        for name in raw:
            _, kind, book = systems[name]
            systems[f"{name}_dpdp"] = (segmented[name], kind, book)
            log.info(
                "DPDP %s: penalty %.4g per segment (segments of %.1f latents on average)",
                name,
                penalties[name],
                dp.mean_latents,
            )
    matched: dict[int, float] = {}
    if train_mfcc is not None:
        target = code_perplexity(systems["vqvae"][0])

        def predict(fit: MiniBatchKMeans) -> np.ndarray:
            if fit is km:
                return systems["kmeans_mfcc"][0]
            return np.concatenate(
                [fit.predict(c.paired).astype(np.int64) for c in held.chunks(latents=False)]
            )

        fit, matched, codes = matched_kmeans(km, train_mfcc, predict, target, seed)
        systems["kmeans_mfcc_matched"] = (codes, "mfcc", fit.cluster_centers_)
        log.info(
            "k-means on MFCC at the learned codes' perplexity %.2f: K' = %d (tried %s)",
            target,
            fit.n_clusters,
            ", ".join(f"{c}: {p:.2f}" for c, p in matched.items()),
        )
    systems["random"] = (np.random.default_rng(seed).integers(0, k, n), None, None)
    phone_ids, phone_names = phone_labels(layout.frames["phone"])
    rate = symbol_rate_of(n, held.n_frames)
    result: dict[str, dict] = {}
    for name, (codes, _, _) in systems.items():
        result[name] = score_codes(
            phone_ids, phone_names, codes, offsets, ev.boundary_tolerance, rate
        )
        if name.endswith("_dpdp"):
            result[name]["dpdp_penalty"] = penalties[name.removesuffix("_dpdp")]
        if name == "kmeans_mfcc_matched":
            result[name]["k"] = len(systems[name][2])
            result[name]["tried"] = {str(c): p for c, p in matched.items()}
        r = result[name]["all"]
        log.info(
            "%s: NMI %.3f, PNMI %.3f, phone purity %.3f, boundary F1 %.3f, mean run %.2f",
            name,
            r["nmi"],
            r["pnmi"],
            r["phone_purity"],
            r["boundary_f1"],
            r["mean_run_length"],
        )

    # ABX a block of the items' frames at a time (abx.blocks): the same scores as over every
    # frame at once; a representation is (its blocks, the frame distance of block b)
    def spilled(name: str) -> Callable[[int], abx.FrameDistance]:
        return lambda b: abx.angular_unit(spills[name].block(b))

    def coded(codes: np.ndarray, book: np.ndarray) -> Callable[[int], abx.FrameDistance]:
        return lambda b: abx.angular_codes(codes[blocks_20[b][1]], book)

    representations = {("vqvae", "latent"): (blocks_20, spilled("latent"))}
    for name, (codes, _, book) in systems.items():
        if book is not None:
            representations[(name, "code")] = (blocks_20, coded(codes, book))
    representations[("mfcc", "frames_20ms")] = (blocks_20, spilled("mfcc"))
    representations[("mfcc", "frames_10ms")] = (blocks_10, spilled("native"))
    for (system, rep), (blocks, distance) in representations.items():
        started = time.perf_counter()
        parts = ((items, distance(b)) for b, (items, _) in enumerate(blocks))
        res = abx.abx_of_blocks(parts, ev.abx.max_x_across, seed)
        result.setdefault(system, {}).setdefault("abx", {})[rep] = res.as_percent()
        log.info(
            "ABX %s %s: within %.2f %%, across %.2f %% (%.1f s)",
            system,
            rep,
            100 * res.within,
            100 * res.across,
            time.perf_counter() - started,
        )
    return rounded(result)


def headline(result: dict[str, dict]) -> dict[str, dict]:
    """The declared metrics (metrics/eval.json): HEADLINE of all frames per system, ABX within
    and across; `random` only as a chance level (PNMI, NMI, phone purity)."""
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
    return out
