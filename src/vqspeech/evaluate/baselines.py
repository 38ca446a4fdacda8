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

import logging
import math
import time
from collections.abc import Iterable

import numpy as np
import pandas as pd
from sklearn.cluster import MiniBatchKMeans

from vqspeech.evaluate import abx, dpdp
from vqspeech.evaluate.metrics import (
    boundary_scores,
    entropy_bits,
    mean_run_length,
    scores,
    speech_mask,
)
from vqspeech.evaluate.sampling import BottomK
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer

log = logging.getLogger(__name__)
# all frames; the rest (speech frames, AMI, ARI, ..., ABX cell counts) is in reports/eval.json
HEADLINE = ("pnmi", "nmi", "ami", "phone_purity", "one_to_one", "boundary_f1", "code_perplexity",
            "codes_used", "bitrate", "mean_run_length")  # fmt: skip


def pair_frames(features: np.ndarray) -> np.ndarray:
    """[T, D] -> [T // 2, D]: the mean of frames 2k and 2k+1 (a trailing odd frame is dropped)."""
    n = len(features) // 2
    return features[: 2 * n].reshape(n, 2, -1).mean(axis=1)


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
    km: MiniBatchKMeans, train: np.ndarray, held_out: np.ndarray, target: float, seed: int,
    refits: int = 2,
) -> tuple[MiniBatchKMeans, dict[int, float]]:  # fmt: skip
    """k-means on the same train frames at the K' whose codes' perplexity on `held_out` comes
    closest to `target` (the learned codes'): the comparison at equal used codes. Starting
    from `km` (K codes), K' is scaled by target / perplexity (which grows about linearly with
    K') up to `refits` times, stopping when it repeats. Returns the closest fit and every
    (K', perplexity) tried."""
    fits = {km.n_clusters: km}
    tried = {km.n_clusters: code_perplexity(km.predict(held_out))}
    k = km.n_clusters
    for _ in range(refits):
        k = max(2, round(k * target / tried[k]))
        if k in tried:
            break
        fits[k] = kmeans(train, k, seed)
        tried[k] = code_perplexity(fits[k].predict(held_out))
    best = min(tried, key=lambda c: (abs(tried[c] - target), c))
    return fits[best], tried


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


def baseline_codes(
    utts: Iterable[Utterance], km: MiniBatchKMeans, norm: Normalizer
) -> pd.DataFrame:
    """(utterance_id, frame, code) of the k-means baseline for every 20 ms frame."""
    keys, x = paired_features(utts, norm)
    return keys.assign(code=km.predict(x).astype(np.int64))


def score_system(
    frames: pd.DataFrame, tolerance: int, symbols_per_second: float
) -> dict[str, dict[str, float]]:
    """Metrics of one system; `frames` has utterance_id, frame, phone, code (one row a latent);
    `symbols_per_second` is the code rate for the bitrate (see `symbol_rate`)."""
    frames = frames.sort_values(["utterance_id", "frame"])
    phones, codes = frames["phone"].to_numpy(), frames["code"].to_numpy()
    groups = [g for _, g in frames.groupby("utterance_id", sort=True)]
    phone_seqs = [g["phone"].to_numpy() for g in groups]
    code_seqs = [g["code"].to_numpy() for g in groups]
    all_frames = scores(phones, codes, symbols_per_second)
    all_frames.update(boundary_scores(phone_seqs, code_seqs, tolerance))
    all_frames["mean_run_length"] = mean_run_length(code_seqs)
    speech = speech_mask(phones)
    speech_frames = scores(phones[speech], codes[speech], symbols_per_second)
    speech_frames.update(boundary_scores(phone_seqs, code_seqs, tolerance, speech_only=True))
    return {"all": all_frames, "speech": speech_frames}


def symbol_rate(
    symbols: int, utterances: Iterable[Utterance], hop_s: float = 0.01, win_s: float = 0.025
) -> float:
    """Symbols per second of real audio, as ZeroSpeech 2019's bitrate counts them: the number
    of code frames over the total duration the utterances' features cover ((frames - 1) hops
    plus one window each: the audio the codes describe, within one 10 ms hop of the file)."""
    seconds = sum((len(u.features) - 1) * hop_s + win_s for u in utterances if len(u.features))
    if seconds <= 0:
        raise ValueError("no audio to divide the symbols by")
    return symbols / seconds


def native_features(utts: Iterable[Utterance], norm: Normalizer) -> tuple[pd.DataFrame, np.ndarray]:
    """(utterance_id, frame) sorted, and the normalized 10 ms feature vector of every frame."""
    ordered = sorted(utts, key=lambda u: u.utterance_id)
    if not ordered:
        raise ValueError("no utterances")
    keys = pd.concat([pd.DataFrame({"utterance_id": u.utterance_id,
                                    "frame": np.arange(len(u.features))}) for u in ordered],
                     ignore_index=True)  # fmt: skip
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


def paired_like(
    frames: pd.DataFrame, utts: Iterable[Utterance], norm: Normalizer, source: str
) -> np.ndarray:
    """The paired MFCC vector of each row of `frames` (same order); a coded frame without MFCC
    is a ValueError naming `source`."""
    keys, mfcc = paired_features(utts, norm)
    rows = frames[["utterance_id", "frame"]].merge(
        keys.reset_index(), on=["utterance_id", "frame"], how="left", validate="1:1"
    )["index"]
    if rows.isna().any():
        raise ValueError(f"{source}: no MFCC frames for {int(rows.isna().sum())} "
                         f"of {len(frames)} coded frames")  # fmt: skip
    return mfcc[rows.to_numpy(dtype=np.int64)]


def abx_items(
    intervals: pd.DataFrame, frames: pd.DataFrame, stride: int, max_group: int, seed: int
) -> abx.Items:
    """ABX items of the phone intervals over a frame table at `stride` 10 ms frames per frame,
    capped per group (see vqspeech.evaluate.abx)."""
    items = abx.items_from_intervals(intervals, frames, abx.FrameGrid.of(stride))
    cut, groups = abx.over_cap(items, max_group)
    log.info("ABX at %d ms: %d items of %d intervals; %d of %d (context, speaker, phone) groups "
             "over %d items, cut", 10 * stride, len(items), len(intervals), cut, groups,
             max_group)  # fmt: skip
    return abx.cap_groups(items, max_group, seed)


def evaluate(
    frames: pd.DataFrame, latents: np.ndarray, codebook: np.ndarray, km: MiniBatchKMeans,
    mfcc: np.ndarray, *, native: tuple[pd.DataFrame, np.ndarray], intervals: pd.DataFrame,
    symbols_per_second: float, seed: int, tolerance: int, max_group: int, max_x_across: int,
    train_latents: np.ndarray | None = None, dpdp_mean: float = 0.0, dpdp_max: int = 20,
    train_mfcc: np.ndarray | None = None,
) -> dict[str, dict]:  # fmt: skip
    """Every system's scores on the same frames (see the module docstring), the full grid.

    frames: one row per 20 ms latent (utterance_id, frame, speaker, phone, code); latents [N, E]
    and mfcc [N, D] (paired) in the same order; native: the 10 ms frame table and its MFCC
    vectors (`native_features`); intervals: the utterances' phone intervals (ABX items);
    km fitted with K = len(codebook); train_latents: the sample `kmeans_latent` is fitted on
    (None: no such system); dpdp_mean > 0 adds each system re-segmented by DPDP to segments of
    that mean length in latents (`<system>_dpdp`, vqspeech.evaluate.dpdp); train_mfcc: the
    frames km was fitted on (`train_frames`), which adds `kmeans_mfcc_matched`, k-means on MFCC
    at the learned codes' perplexity (`matched_kmeans`; None: no such system)."""
    k = len(codebook)
    # system -> (codes, the vectors its codes quantize, its code vectors)
    systems: dict[str, tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = {
        "vqvae": (frames["code"].to_numpy(), latents, codebook),
        "kmeans_mfcc": (km.predict(mfcc).astype(np.int64), mfcc, km.cluster_centers_),
    }
    if train_latents is not None:
        with_latents = kmeans(train_latents.astype(np.float64), k, seed)
        codes = with_latents.predict(latents.astype(np.float64)).astype(np.int64)
        systems["kmeans_latent"] = (codes, latents, with_latents.cluster_centers_)
    penalties = {}
    if dpdp_mean > 0:
        ids = frames["utterance_id"].to_numpy()
        for name in list(systems):
            _, vectors, book = systems[name]
            codes, penalties[name] = dpdp.resegment(ids, vectors, book, dpdp_mean, dpdp_max, seed)
            systems[f"{name}_dpdp"] = (codes, vectors, book)
            log.info("DPDP %s: penalty %.4g per segment (segments of %.1f latents on average)",
                     name, penalties[name], dpdp_mean)  # fmt: skip
    matched: dict[int, float] = {}
    if train_mfcc is not None:
        target = code_perplexity(systems["vqvae"][0])
        fit, matched = matched_kmeans(km, train_mfcc, mfcc, target, seed)
        systems["kmeans_mfcc_matched"] = (fit.predict(mfcc).astype(np.int64), mfcc,
                                          fit.cluster_centers_)  # fmt: skip
        log.info("k-means on MFCC at the learned codes' perplexity %.2f: K' = %d (tried %s)",
                 target, fit.n_clusters,
                 ", ".join(f"{c}: {p:.2f}" for c, p in matched.items()))  # fmt: skip
    systems["random"] = (np.random.default_rng(seed).integers(0, k, len(frames)), None, None)
    result: dict[str, dict] = {}
    for name, (codes, _, _) in systems.items():
        result[name] = score_system(frames.assign(code=codes), tolerance, symbols_per_second)
        if name.endswith("_dpdp"):
            result[name]["dpdp_penalty"] = penalties[name.removesuffix("_dpdp")]
        if name == "kmeans_mfcc_matched":
            result[name]["k"] = len(systems[name][2])
            result[name]["tried"] = {str(c): p for c, p in matched.items()}
        r = result[name]["all"]
        log.info("%s: NMI %.3f, PNMI %.3f, phone purity %.3f, boundary F1 %.3f, mean run %.2f",
                 name, r["nmi"], r["pnmi"], r["phone_purity"], r["boundary_f1"],
                 r["mean_run_length"])  # fmt: skip
    items_20 = abx_items(intervals, frames, 2, max_group, seed)
    items_10 = abx_items(intervals, native[0], 1, max_group, seed)
    representations = {("vqvae", "latent"): (items_20, abx.angular(latents))}
    for name, (codes, _, book) in systems.items():
        if book is not None:
            representations[(name, "code")] = (items_20, abx.angular_codes(codes, book))
    representations[("mfcc", "frames_20ms")] = (items_20, abx.angular(mfcc))
    representations[("mfcc", "frames_10ms")] = (items_10, abx.angular(native[1]))
    for (system, rep), (items, distance) in representations.items():
        started = time.perf_counter()
        res = abx.abx(items, distance, max_x_across, seed)
        result.setdefault(system, {}).setdefault("abx", {})[rep] = res.as_percent()
        log.info("ABX %s %s: within %.2f %%, across %.2f %% (%.1f s)", system, rep,
                 100 * res.within, 100 * res.across, time.perf_counter() - started)  # fmt: skip
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
            out[system]["abx"] = {rep: {side: v[side] for side in ("within", "across")}
                                  for rep, v in r["abx"].items()}  # fmt: skip
    return out
