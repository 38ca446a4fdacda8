"""The evaluate stage's work: every system's codes on the same held-out frames, scored beside
each other (docs/design.md "Evaluation").

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
A linear speaker-ID probe (vqspeech.evaluate.probe, `eval.probe`) scores the speaker information
of the VQ-VAE's latents, of every raw system's code vectors and of the MFCC frames at 20 ms
(`speaker_probe`, with chance beside each).
Each is scored on all frames and on speech frames (without sil/sp/spn). `evaluate` returns the
full grid (reports/eval.json); `headline` the few numbers `dvc metrics show` puts side by side.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import MiniBatchKMeans

from vqspeech.evaluate import abx, dpdp, probe
from vqspeech.evaluate.heldout import Chunk, CodedSplit, Rows, Spill
from vqspeech.evaluate.kmeans import code_perplexity, kmeans, matched_kmeans
from vqspeech.evaluate.scoring import phone_labels, rounded, score_codes, symbol_rate_of
from vqspeech.params import ABXParams, DPDPParams, EvalParams, ProbeParams
from vqspeech.phones import SILENCES

log = logging.getLogger(__name__)


def _ranges(offsets: np.ndarray, which: np.ndarray) -> np.ndarray:
    """The rows of utterances `which` (sorted), utterance u being rows offsets[u]:offsets[u+1]."""
    parts = [np.arange(offsets[u], offsets[u + 1]) for u in which]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


# system -> (its codes, one per latent; which vectors its codes quantize: "latent", "mfcc" or
# None; its code vectors or None)
Systems = dict[str, tuple[np.ndarray, str | None, np.ndarray | None]]


@dataclass
class AbxPlan:
    """What ABX needs of the vectors, known from the frame table alone: the items at 20 ms and at
    10 ms in blocks of whole contexts, and the folders their unit vectors wait in on disk."""

    blocks_20: list[tuple[abx.Items, np.ndarray]]
    blocks_10: list[tuple[abx.Items, np.ndarray]]
    spills: dict[str, Spill]


def abx_plan(
    held: CodedSplit, width: int, intervals: pd.DataFrame, p: ABXParams, seed: int, scratch: Path
) -> AbxPlan:
    """`eval.abx`: the items (capped per group), in blocks of at most `block_mb` MiB of frames and
    DTW distances (`width`: the widest representation at 20 ms), spilled to `scratch`."""
    layout, budget = held.layout, p.block_mb * 2**20
    items_20 = abx.capped_items(intervals, layout.ids, layout.counts, 2, p.max_group, seed)
    items_10 = abx.capped_items(intervals, layout.ids, held.n_frames, 1, p.max_group, seed)
    blocks_20 = abx.blocks(items_20, 4 * width, budget)
    blocks_10 = abx.blocks(items_10, 4 * len(held.norm.mean), budget)
    log.info(
        "ABX items in %d blocks at 20 ms, %d at 10 ms (eval.abx.block_mb %g)",
        len(blocks_20),
        len(blocks_10),
        p.block_mb,
    )
    spills = {
        name: Spill([rows for _, rows in blocks], scratch, name)
        for name, blocks in (("latent", blocks_20), ("mfcc", blocks_20), ("native", blocks_10))
    }
    return AbxPlan(blocks_20, blocks_10, spills)


def first_pass(
    held: CodedSplit,
    codebook: np.ndarray,
    km: MiniBatchKMeans,
    with_latents: MiniBatchKMeans | None,
    plan: AbxPlan,
    cal_rows: np.ndarray,
    probe_rows: np.ndarray,
) -> tuple[Systems, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One pass over the held-out split: the codes of `vqvae`, `kmeans_mfcc` and (with a latent
    k-means) `kmeans_latent`, the ABX items' unit vectors spilled, and the latents and paired
    MFCC (by kind) of the DPDP calibration rows `cal_rows` and of the speaker probe's rows
    `probe_rows`."""
    want = {"latent": Rows(cal_rows), "mfcc": Rows(cal_rows)}
    probed = {"latent": Rows(probe_rows), "mfcc": Rows(probe_rows)}
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
            plan.spills[name].add(abx.unit(part), rows)
        for rows_of in (want, probed):
            rows_of["latent"].add(c.latents, c.rows)
            rows_of["mfcc"].add(c.paired, c.rows)
    systems: Systems = {
        "vqvae": (held.layout.frames["code"].to_numpy().astype(np.int64), "latent", codebook),
        "kmeans_mfcc": (np.concatenate(mfcc_codes), "mfcc", km.cluster_centers_),
    }
    if with_latents is not None:
        systems["kmeans_latent"] = (
            np.concatenate(latent_codes),
            "latent",
            with_latents.cluster_centers_,
        )
    return (
        systems,
        {kind: rows.result() for kind, rows in want.items()},
        {kind: rows.result() for kind, rows in probed.items()},
    )


def probe_plan(held: CodedSplit, p: ProbeParams, seed: int) -> probe.ProbePlan | None:
    """`eval.probe`: the speaker probe's frames of the held-out split (None: off, or fewer than
    two speakers with two utterances)."""
    if p.frames == 0:
        return None
    frames = held.layout.frames
    phones = frames["phone"].astype(str).to_numpy()
    found = probe.plan(
        frames["speaker"].astype(str).to_numpy(),
        frames["utterance_id"].astype(str).to_numpy(),
        ~np.isin(phones, SILENCES),
        p,
        seed,
    )
    if found is None:
        log.warning("speaker probe skipped: fewer than two held-out speakers with two utterances")
    return found


def add_probe(
    result: dict[str, dict],
    systems: Systems,
    plan: probe.ProbePlan,
    vectors: dict[str, np.ndarray],
    seed: int,
) -> None:
    """The speaker probe's accuracy on the VQ-VAE's latents, every raw system's code vectors and
    the MFCC frames at 20 ms (`vectors` by kind: the probe rows' latents and paired MFCC), into
    `result[system]["speaker_probe"][representation]`, with `chance` beside."""
    reps = {("vqvae", "latent"): vectors["latent"], ("mfcc", "frames_20ms"): vectors["mfcc"]}
    for name, (codes, _, book) in systems.items():
        if book is not None and not name.endswith("_dpdp"):
            reps[(name, "code")] = book[codes[plan.rows]]
    for (system, rep), x in reps.items():
        started = time.perf_counter()
        found = result.setdefault(system, {}).setdefault("speaker_probe", {"chance": plan.chance})
        found[rep] = probe.accuracy(x, plan, seed)
        log.info(
            "speaker probe %s %s: accuracy %.3f (chance %.3f, %d speakers; %.1f s)",
            system,
            rep,
            found[rep],
            plan.chance,
            plan.speakers,
            time.perf_counter() - started,
        )


def add_dpdp(
    held: CodedSplit,
    systems: Systems,
    calibration: dict[str, np.ndarray],
    cal_offsets: np.ndarray,
    p: DPDPParams,
) -> dict[str, float]:
    """`eval.dpdp`: each system re-segmented (`<system>_dpdp`) with the penalty calibrated on the
    calibration utterances (`calibration` by kind, utterances at `cal_offsets`); one more pass."""
    raw = list(systems)
    books = {name: systems[name][2] for name in raw}
    cal = {name: calibration[systems[name][1]] for name in raw}
    penalties = dpdp.penalties(cal, books, cal_offsets, p)

    def quantized(c: Chunk) -> dict[str, np.ndarray]:  # what each system's codes quantize
        return {name: c.latents if systems[name][1] == "latent" else c.paired for name in raw}

    chunks = ((quantized(c), c.offsets) for c in held.chunks())
    segmented = dpdp.resegment(chunks, books, penalties, p.max_latents)
    for name in raw:
        _, kind, book = systems[name]
        systems[f"{name}_dpdp"] = (segmented[name], kind, book)
        log.info(
            "DPDP %s: penalty %.4g per segment (segments of %.1f latents on average)",
            name,
            penalties[name],
            p.mean_latents,
        )
    return penalties


def add_matched(
    held: CodedSplit, systems: Systems, km: MiniBatchKMeans, train_mfcc: np.ndarray, seed: int
) -> dict[int, float]:
    """`kmeans_mfcc_matched`: k-means on MFCC at the learned codes' perplexity
    (`matched_kmeans`; a pass per K' tried); returns the perplexity of every K' tried."""
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
    return matched


def score_all(
    held: CodedSplit,
    systems: Systems,
    tolerance: int,
    penalties: dict[str, float],
    matched: dict[int, float],
) -> dict[str, dict]:
    """Every system's clustering and boundary scores (`scoring.score_codes`, `eval.
    boundary_tolerance`), with each DPDP system's penalty and the matched K' and those tried."""
    layout = held.layout
    phone_ids, phone_names = phone_labels(layout.frames["phone"])
    rate = symbol_rate_of(len(layout.frames), held.n_frames)
    result: dict[str, dict] = {}
    for name, (codes, _, _) in systems.items():
        result[name] = score_codes(phone_ids, phone_names, codes, layout.offsets, tolerance, rate)
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
    return result


def add_abx(
    result: dict[str, dict], systems: Systems, plan: AbxPlan, p: ABXParams, seed: int
) -> None:
    """ABX (libri-light's, `eval.abx`) of the VQ-VAE's latents, every system's code vectors and
    the MFCC frames at 20 and 10 ms, a block of the items' frames at a time (`abx.blocks`: the
    same scores as over every frame at once), into `result[system]["abx"][representation]`."""

    def spilled(name: str) -> Callable[[int], abx.FrameDistance]:
        return lambda b: abx.angular_unit(plan.spills[name].block(b))

    def coded(codes: np.ndarray, book: np.ndarray) -> Callable[[int], abx.FrameDistance]:
        return lambda b: abx.angular_codes(codes[plan.blocks_20[b][1]], book)

    representations = {("vqvae", "latent"): (plan.blocks_20, spilled("latent"))}
    for name, (codes, _, book) in systems.items():
        if book is not None:
            representations[(name, "code")] = (plan.blocks_20, coded(codes, book))
    representations[("mfcc", "frames_20ms")] = (plan.blocks_20, spilled("mfcc"))
    representations[("mfcc", "frames_10ms")] = (plan.blocks_10, spilled("native"))
    for (system, rep), (blocks, distance) in representations.items():
        started = time.perf_counter()
        parts = ((items, distance(b)) for b, (items, _) in enumerate(blocks))
        res = abx.abx_of_blocks(parts, p.max_x_across, seed)
        result.setdefault(system, {}).setdefault("abx", {})[rep] = res.as_percent()
        log.info(
            "ABX %s %s: within %.2f %%, across %.2f %% (%.1f s)",
            system,
            rep,
            100 * res.within,
            100 * res.across,
            time.perf_counter() - started,
        )


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
    """Every system's scores on the same frames (see the module docstring), the full grid:
    systems (`first_pass`) -> DPDP (`add_dpdp`) -> equal perplexity (`add_matched`) -> scores
    (`score_all`) -> ABX (`add_abx`) -> speaker probe (`add_probe`).

    held: the coded frames (`held.layout`: one row per 20 ms latent, utterance_id, frame,
    speaker, phone, code) and their latents and MFCC, read a shard at a time in passes;
    intervals: the utterances' phone intervals (ABX items); km fitted with K = len(codebook);
    ev: `params.eval` as it is; train_latents: the sample `kmeans_latent` is fitted on (None: no
    such system); `eval.dpdp.mean_latents` > 0 adds each system re-segmented by DPDP; train_mfcc:
    the frames km was fitted on (`train_frames`), which adds `kmeans_mfcc_matched` (None: no such
    system). In memory: one integer per latent per system, the calibration utterances, and one
    block of the ABX items; the items' unit vectors wait in `scratch` (a folder of the caller's,
    emptied by it)."""
    layout, k = held.layout, len(codebook)
    with_latents = None
    if train_latents is not None:
        with_latents = kmeans(train_latents.astype(np.float64), k, seed)
    width = max(codebook.shape[1], len(held.norm.mean))  # the widest representation at 20 ms
    plan = abx_plan(held, width, intervals, ev.abx, seed, scratch)
    dp = ev.dpdp
    pick = dpdp.calibration_pick(len(layout.ids), seed) if dp.mean_latents > 0 else np.zeros(0, int)
    cal_rows = _ranges(layout.offsets, pick)
    speaker_probe = probe_plan(held, ev.probe, seed)
    probe_rows = np.zeros(0, np.int64) if speaker_probe is None else speaker_probe.rows
    systems, calibration, probed = first_pass(
        held, codebook, km, with_latents, plan, cal_rows, probe_rows
    )
    penalties: dict[str, float] = {}
    if dp.mean_latents > 0:
        cal_offsets = np.r_[0, np.cumsum(np.diff(layout.offsets)[pick])].astype(np.int64)
        penalties = add_dpdp(held, systems, calibration, cal_offsets, dp)
    matched = add_matched(held, systems, km, train_mfcc, seed) if train_mfcc is not None else {}
    systems["random"] = (np.random.default_rng(seed).integers(0, k, len(layout.frames)), None, None)
    result = score_all(held, systems, ev.boundary_tolerance, penalties, matched)
    add_abx(result, systems, plan, ev.abx, seed)
    if speaker_probe is not None:
        add_probe(result, systems, speaker_probe, probed, seed)
    return rounded(result)
