"""Across experiments: metrics against codebook size, spread over seeds, jitter on and off.

`runs(rows)` turns `dvc.api.exp_show()` rows (one per commit or experiment; params and metrics
flattened to dotted names) into a table with one row per finished run; `summary` groups runs that
differ only in `train.seed` into configurations (mean, std and count per metric); the figures
and the Markdown table are drawn from those. `codebook_animation` renders UMAP frames of the
snapshots the train stage wrote (codebook + fixed val latents over training) as a GIF.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vqspeech.io import atomic
from vqspeech.io.figure import save

K = "model.quantizer.codebook_size"
SEED = "train.seed"
# (label, vqvae metric, k-means-on-MFCC metric at the same K or None, higher is better)
METRICS: tuple[tuple[str, str, str | None, bool], ...] = (
    ("PNMI", "vqvae.pnmi", "kmeans_mfcc.pnmi", True),
    ("NMI", "vqvae.nmi", "kmeans_mfcc.nmi", True),
    ("AMI", "vqvae.ami", "kmeans_mfcc.ami", True),
    ("phone purity", "vqvae.phone_purity", "kmeans_mfcc.phone_purity", True),
    ("one-to-one", "vqvae.one_to_one", "kmeans_mfcc.one_to_one", True),
    ("boundary F1", "vqvae.boundary_f1", "kmeans_mfcc.boundary_f1", True),
    ("code perplexity", "vqvae.code_perplexity", "kmeans_mfcc.code_perplexity", True),
    ("bitrate (bit/s)", "vqvae.bitrate", "kmeans_mfcc.bitrate", False),
    ("mean run (latents)", "vqvae.mean_run_length", "kmeans_mfcc.mean_run_length", True),
    ("ABX across, latents (%)", "vqvae.abx.latent.across", "mfcc.abx.frames_20ms.across", False),
    ("ABX within, latents (%)", "vqvae.abx.latent.within", "mfcc.abx.frames_20ms.within", False),
    ("ABX across, codes (%)", "vqvae.abx.code.across", "kmeans_mfcc.abx.code.across", False),
    ("ABX within, codes (%)", "vqvae.abx.code.within", "kmeans_mfcc.abx.code.within", False),
    ("PNMI vs k-means on MFCC at equal perplexity", "vqvae.pnmi", "kmeans_mfcc_matched.pnmi", True),
    (
        "ABX across, codes vs k-means at equal perplexity (%)",
        "vqvae.abx.code.across",
        "kmeans_mfcc_matched.abx.code.across",
        False,
    ),
    ("PNMI, k-means on latents", "kmeans_latent.pnmi", "kmeans_mfcc.pnmi", True),
    (
        "ABX across, k-means on latents (%)",
        "kmeans_latent.abx.code.across",
        "kmeans_mfcc.abx.code.across",
        False,
    ),
    (
        "speaker probe, latents vs MFCC frames",
        "vqvae.speaker_probe.latent",
        "mfcc.speaker_probe.frames_20ms",
        False,
    ),
    ("speaker probe, codes", "vqvae.speaker_probe.code", "kmeans_mfcc.speaker_probe.code", False),
    ("PNMI after DPDP", "vqvae_dpdp.pnmi", "kmeans_mfcc_dpdp.pnmi", True),
    ("boundary F1 after DPDP", "vqvae_dpdp.boundary_f1", "kmeans_mfcc_dpdp.boundary_f1", True),
    (
        "ABX across, codes after DPDP (%)",
        "vqvae_dpdp.abx.code.across",
        "kmeans_mfcc_dpdp.abx.code.across",
        False,
    ),
)
PARAM_SECTIONS = ("data", "features", "stats", "model", "train", "eval")
_CLUSTER = (
    "pnmi",
    "nmi",
    "phone_purity",
    "code_perplexity",
    "bitrate",
    "mean_run_length",
    "abx.code.within",
    "abx.code.across",
)
# the study table's systems and the metrics each has (`study_markdown`)
STUDY_SYSTEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vqvae", (*_CLUSTER, "abx.latent.within", "abx.latent.across")),
    ("kmeans_mfcc", _CLUSTER),
    ("kmeans_mfcc_matched", (*_CLUSTER, "k")),
    ("kmeans_latent", _CLUSTER),
    ("vqvae_dpdp", _CLUSTER),
    ("kmeans_mfcc_dpdp", _CLUSTER),
    ("mfcc", ("abx.frames_20ms.within", "abx.frames_20ms.across")),
)
# kept from each run beside METRICS: the probe's chance level, the training time
EXTRA = ("vqvae.speaker_probe.chance", "train_seconds")
NONE = "\u2013"  # an empty table cell
STUDY_LABELS = {
    "vqvae": "learned codes",
    "kmeans_mfcc": "k-means on MFCC",
    "kmeans_mfcc_matched": "k-means on MFCC, equal perplexity",
    "kmeans_latent": "k-means on latents",
    "vqvae_dpdp": "learned codes, DPDP",
    "kmeans_mfcc_dpdp": "k-means on MFCC, DPDP",
    "mfcc": "MFCC frames (20 ms)",
}
IGNORED_PARAMS = {
    SEED,
    "train.device",
    "train.threads",
    "train.log_every",
    "train.snapshot_every",
    "data.jobs",
    "features.jobs",
}


# knobs added with a default that changed the behaviour: the value every earlier run had (a
# knob not listed was added with the default that keeps the earlier behaviour)
BEFORE_IT_EXISTED: dict[str, object] = {"model.cpc.causal": False}
# ... and the runs it mattered to: (param, value); the other earlier runs take the default (a
# VQ-CPC knob says nothing about a VQ-VAE run and must not split its configuration)
APPLIES_TO: dict[str, tuple[str, tuple[object, ...]]] = {
    "model.cpc.causal": ("model.family", ("vqcpc", "cpc")),
    "model.cpc.negatives_from": ("model.family", ("vqcpc", "cpc")),
}

# experiments recorded before the headline metrics and the nested quantizer params
LEGACY = {K: "model.codebook_size"}
# params that moved to another section since some runs were recorded: old name -> new name
MOVED = {
    "train.kmeans_init": "model.quantizer.kmeans_init",
    "train.kmeans_batches": "model.quantizer.kmeans_batches",
}


def _moved(table: pd.DataFrame) -> pd.DataFrame:
    """A run recorded under a param's old name takes the new name (one column per param)."""
    for old, new in MOVED.items():
        if old in table.columns:
            kept = table[new] if new in table.columns else pd.Series(None, index=table.index)
            table[new] = kept.where(kept.notna(), table[old])
            table = table.drop(columns=old)
    return table


def _legacy(name: str) -> str:
    system, _, metric = name.partition(".")
    if name in LEGACY:
        return LEGACY[name]
    flat = system in ("vqvae", "kmeans_mfcc") and not metric.startswith("abx.")
    return f"{system}.all.{metric}" if flat else name


def _value(row: Mapping[str, object], name: str) -> object:
    """A flattened column by name (or its name before the headline metrics); DVC prefixes
    `file:` when two files share a name."""
    for candidate in dict.fromkeys((name, _legacy(name))):
        if candidate in row:
            return row[candidate]
        for key, value in row.items():
            if key.endswith(":" + candidate):
                return value
    return None


def _number(x: object) -> float:
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return v


def runs(rows: Iterable[Mapping[str, object]], include_workspace: bool = False) -> pd.DataFrame:
    """One row per finished run (its evaluation metrics present): name, rev, every param that
    `dvc exp show` reports, and the metrics of METRICS. Queued, running and failed experiments
    and (unless asked) the uncommitted workspace are left out."""
    out = []
    for row in rows:
        rev = str(row.get("rev"))
        if rev == "workspace" and not include_workspace:
            continue
        if row.get("State") not in (None, "Success"):
            continue
        if math.isnan(_number(_value(row, METRICS[0][1]))):
            continue
        record: dict[str, object] = {"name": row.get("Experiment") or rev, "rev": rev}
        for key, value in row.items():
            bare = key.split(":", 1)[-1]
            if bare.split(".")[0] in PARAM_SECTIONS:
                record[bare] = value
        if K not in record and LEGACY[K] in record:  # recorded with the flat model params
            record[K] = record.pop(LEGACY[K])
        for _, ours, base, _ in METRICS:
            record[ours] = _number(_value(row, ours))
            if base:
                record[base] = _number(_value(row, base))
        for system, metrics in STUDY_SYSTEMS:
            for metric in metrics:
                name = f"{system}.{metric}"
                record.setdefault(name, _number(_value(row, name)))
        for name in EXTRA:
            record[name] = _number(_value(row, name))
        out.append(record)
    table = pd.DataFrame(out)
    if table.empty:
        raise ValueError("no finished experiment with evaluation metrics (run `dvc exp show`)")
    return newest(_moved(table)).reset_index(drop=True)


def _once(table: pd.DataFrame) -> pd.DataFrame:
    """The same run reached twice (a commit's row and the workspace, commits that did not change
    the pipeline with -A, an experiment and the commit that reproduced it) kept once, or it
    would count as several seeds."""
    params = [
        c
        for c in table.columns
        if c.split(".")[0] in PARAM_SECTIONS and (c == SEED or c not in IGNORED_PARAMS)
    ]
    metrics = list(dict.fromkeys(c for _, ours, base, _ in METRICS for c in (ours, base) if c))
    keys = table[params].astype(str).join(table.reindex(columns=metrics))
    return table[~keys.duplicated()]


def _canonical(v: object) -> object:
    """A param value as both `dvc exp show` and a runs.csv read back give it: None for missing,
    booleans, integers for integral numbers, floats, else the text."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v in ("None", "nan", ""):
        return None
    if isinstance(v, bool) or str(v) in ("True", "False"):
        return str(v) == "True"
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return int(f) if f.is_integer() else f


def with_earlier_runs(
    table: pd.DataFrame | None, earlier: pd.DataFrame, defaults: Mapping[str, object]
) -> pd.DataFrame:
    """`table` (None: no experiment now) and the runs of an earlier comparison (its runs.csv:
    experiments no longer in this repository, e.g. a fresh clone, where DVC does not keep them)
    as one table; a run of `table` replaces an earlier one of the same name, or of the same
    params and seed (the newest run of each configuration and seed is kept). A param the
    earlier runs did not have gets its `defaults` value (params.yaml): a knob is added with the
    default that keeps the earlier behaviour, or its value is in BEFORE_IT_EXISTED."""
    earlier = earlier.copy()
    if table is not None:
        earlier = earlier[~earlier["name"].isin(set(table["name"]))]
    both = pd.concat([earlier, table] if table is not None else [earlier], ignore_index=True)
    both = _moved(both)
    columns = sorted(both.columns, key=lambda c: c in APPLIES_TO)  # what they apply to first
    for c in columns:
        if c.split(".")[0] not in PARAM_SECTIONS:
            continue
        both[c] = both[c].map(_canonical).astype(object)  # a str column takes the bool too
        if c not in defaults:
            continue
        # a run of before the knob existed: an earlier table's row, or an experiment of an
        # older commit, has no value
        missing = both[c].isna().to_numpy().copy()
        before = missing.copy()
        if c in APPLIES_TO:  # the earlier value only where the knob applies; elsewhere the
            param, values = APPLIES_TO[c]  # default, whatever an earlier table wrote
            fits = np.isin(both[param].astype(str).to_numpy(), [str(v) for v in values])
            before &= fits
            missing |= ~fits
        both.loc[missing, c] = _param_cell(defaults[c])
        if c in BEFORE_IT_EXISTED:
            both.loc[before, c] = _param_cell(BEFORE_IT_EXISTED[c])
        # filling can leave a column of floats beside the ints it wrote (2000.0 and 2000): one
        # form, or the same run of two commits would count as two seeds
        both[c] = both[c].map(_canonical).astype(object)
    # one run per configuration and seed: a newer run (a rerun here, with metrics added since)
    # replaces an earlier one of another name, or a seed would count twice; `table` comes
    # newest first, as `dvc exp show` lists experiments
    newest_first = pd.concat([both.iloc[len(earlier) :], both.iloc[: len(earlier)]])
    return newest(newest_first).sort_index().reset_index(drop=True)


def newest(table: pd.DataFrame) -> pd.DataFrame:
    """The first run of each configuration and seed (`table` newest first), after `_once`."""
    table = _once(table)
    params = [
        c
        for c in table.columns
        if c.split(".")[0] in PARAM_SECTIONS and (c == SEED or c not in IGNORED_PARAMS)
    ]
    return table[~table[params].astype(str).duplicated(keep="first")]


def _param_cell(value: object) -> object:
    return str(value) if isinstance(value, list | dict) else value


def config_columns(table: pd.DataFrame) -> list[str]:
    """Params that differ between runs, except the seed (and bookkeeping params)."""
    cols = []
    for c in table.columns:
        if c.split(".")[0] not in PARAM_SECTIONS or c in IGNORED_PARAMS:
            continue
        if table[c].astype(str).nunique() > 1:
            cols.append(c)
    if K not in cols and K in table.columns:
        cols.insert(0, K)
    return cols


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (over seeds) and count of every metric per configuration."""
    cols = config_columns(table)
    metric_cols = list(dict.fromkeys(m for _, ours, base, _ in METRICS for m in (ours, base) if m))
    keys = table[cols].astype(str) if cols else pd.DataFrame({"config": ["all"] * len(table)})
    grouped = table[metric_cols].groupby([keys[c] for c in keys.columns], sort=False)
    mean, std = grouped.mean(), grouped.std(ddof=1)
    res = mean.add_suffix(":mean").join(std.add_suffix(":std"))
    res["seeds"] = grouped.size()
    res = res.reset_index()
    if K in res.columns:
        res[K] = res[K].astype(float).astype(int)
        res = res.sort_values([c for c in res.columns if c in cols], kind="stable")
    return res.reset_index(drop=True)


def _label(row: pd.Series, cols: list[str]) -> str:
    parts = [f"{c.split('.', 1)[1]}={row[c]}" for c in cols if c != K]
    return ", ".join(parts) or "vqvae"


def plot_against_k(summ: pd.DataFrame, path: Path) -> None:
    """Each metric against codebook size (log x), one line per other configuration, error bars
    = std over seeds; the k-means-on-MFCC baseline at the same K dashed."""
    cols = [c for c in summ.columns if "." in c and ":" not in c and c != K]
    n, ncols = len(METRICS), 4
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3.6 * nrows), squeeze=False)
    groups = summ.groupby([summ[c] for c in cols], sort=True) if cols else [("", summ)]
    for ax, (label, ours, base, higher) in zip(axes.flat, METRICS, strict=False):
        for _, g in groups:
            g = g.sort_values(K)
            ax.errorbar(
                g[K],
                g[f"{ours}:mean"],
                yerr=g[f"{ours}:std"].fillna(0),
                marker="o",
                capsize=3,
                label=_label(g.iloc[0], cols),
            )
        if base:
            b = summ.groupby(K)[f"{base}:mean"].mean()
            ax.plot(
                b.index,
                b.to_numpy(),
                "k--",
                marker="s",
                ms=4,
                label="k-means on MFCC"
                if "ABX" not in label or "codes" in label
                else "MFCC frames",
            )
        ax.set_xscale("log")
        ax.set_title(f"{label} ({'higher' if higher else 'lower'} is better)", fontsize=10)
        ax.set_xlabel("codebook size K")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    save(fig, path)


def plot_seeds(table: pd.DataFrame, path: Path) -> None:
    """Every run's PNMI and across-speaker ABX per configuration: the spread over seeds."""
    cols = config_columns(table)
    names = (
        table[cols].astype(str).agg(", ".join, axis=1) if cols else pd.Series(["all"] * len(table))
    )
    order = list(dict.fromkeys(names))
    shown = [
        m
        for m in METRICS
        if m[1] in ("vqvae.pnmi", "vqvae.abx.code.across", "vqvae.abx.latent.across")
    ]
    fig, axes = plt.subplots(1, len(shown), figsize=(6 * len(shown), 0.4 * len(order) + 2))
    for ax, (label, ours, _, _) in zip(np.atleast_1d(axes), shown, strict=True):
        for i, name in enumerate(order):
            vals = table.loc[names.to_numpy() == name, ours]
            ax.scatter(vals, [i] * len(vals), s=25)
            ax.plot([vals.mean()] * 2, [i - 0.3, i + 0.3], "k-", lw=1.5)
        ax.set_yticks(range(len(order)), order, fontsize=7)
        ax.set_title(f"{label}: each seed (dots), mean (bar)", fontsize=10)
    fig.tight_layout()
    save(fig, path)


def markdown(summ: pd.DataFrame) -> str:
    """The summary as a Markdown table: mean ± std over seeds, the baseline beside."""
    cols = [c for c in summ.columns if "." in c and ":" not in c]
    header = [*(c.split(".", 1)[1] for c in cols), "seeds"]
    for label, _, base, _ in METRICS:
        header.append(label)
        if base:
            header.append("baseline")
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(cols) + "---:|" * (len(header) - len(cols)),
    ]
    for _, r in summ.iterrows():
        cells = [_cell(r[c]) for c in cols] + [str(int(r["seeds"]))]
        for _, ours, base, _ in METRICS:
            m, s = r[f"{ours}:mean"], r[f"{ours}:std"]
            cells.append(f"{m:.3f}" + (f" ± {s:.3f}" if not math.isnan(s) else ""))
            if base:
                cells.append(f"{r[f'{base}:mean']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def flatten(params: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    """Nested params (params.yaml) as dotted names, as `dvc exp show` names them."""
    out: dict[str, object] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _spread(runs: pd.DataFrame, name: str, digits: int) -> str:
    """Column `name` of `runs` as "mean ± std" over its runs (no spread for one run)."""
    vals = runs[name].dropna() if name in runs else pd.Series(dtype=float)
    if vals.empty:
        return NONE
    spread = f" ± {vals.std(ddof=1):.{digits}f}" if len(vals) > 1 else ""
    return f"{vals.mean():.{digits}f}{spread}"


def study_markdown(
    table: pd.DataFrame,
    defaults: Mapping[str, object] | None = None,
    systems: Iterable[str] | None = None,
) -> str:
    """The study table: per configuration (params that differ, the seed aside; named by those
    that differ from `defaults`, dotted names), each system's clustering and ABX metrics as
    mean ± std over its seeds; latent ABX for the VQ-VAE's latents and, on the MFCC row, ABX of
    the MFCC frames paired to 20 ms. `systems`: those of STUDY_SYSTEMS to show (default all)."""
    shown = set(systems) if systems is not None else {name for name, _ in STUDY_SYSTEMS}
    labels = config_labels(table, defaults)
    header = [
        "configuration",
        "system",
        "seeds",
        "PNMI",
        "NMI",
        "phone purity",
        "perplexity",
        "code ABX within %",
        "code ABX across %",
        "latent / frame ABX within %",
        "latent / frame ABX across %",
        "bitrate",
        "mean run",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]

    for label in dict.fromkeys(labels):
        runs = table[labels.to_numpy() == label]
        for system, _ in STUDY_SYSTEMS:
            if system == "mfcc" or system not in shown:
                continue
            if runs.get(f"{system}.pnmi", pd.Series(dtype=float)).isna().all():
                continue
            # continuous ABX beside the codes: the VQ-VAE's latents; for k-means on MFCC, the frames
            frames = {"vqvae": "vqvae.abx.latent", "kmeans_mfcc": "mfcc.abx.frames_20ms"}.get(
                system
            )
            frame_w = _spread(runs, f"{frames}.within", 2) if frames else NONE
            frame_a = _spread(runs, f"{frames}.across", 2) if frames else NONE
            lines.append(
                "| "
                + " | ".join(
                    [
                        label,
                        STUDY_LABELS[system],
                        str(len(runs)),
                        _spread(runs, f"{system}.pnmi", 3),
                        _spread(runs, f"{system}.nmi", 3),
                        _spread(runs, f"{system}.phone_purity", 3),
                        _spread(runs, f"{system}.code_perplexity", 1),
                        _spread(runs, f"{system}.abx.code.within", 2),
                        _spread(runs, f"{system}.abx.code.across", 2),
                        frame_w,
                        frame_a,
                        _spread(runs, f"{system}.bitrate", 0),
                        _spread(runs, f"{system}.mean_run_length", 2),
                    ]
                )
                + " |"
            )
    return "\n".join(lines) + "\n"


def lineup_markdown(
    table: pd.DataFrame, defaults: Mapping[str, object] | None = None, short: bool = False
) -> str:
    """The line-up: one row per `model.family` at its best configuration (the highest ratio of
    mean PNMI to k-means' at the same K among those with the most seeds), mean ± std over seeds
    beside k-means on MFCC at the same K
    in the same runs: PNMI and its ratio, code ABX within and across and the across ratio, the
    speaker probe's accuracy on the learned latents and on the MFCC frames (chance beside), the
    bitrate and the training time. `short` (the README's): k-means' means and the ratios in the
    learned system's PNMI and code ABX across cells, and no MFCC probe."""
    labels = config_labels(table, defaults)
    family = table.get("model.family", pd.Series(["vqvae"] * len(table), index=table.index))
    family = family.fillna("vqvae").astype(str)

    def mean(runs: pd.DataFrame, name: str) -> float:
        return float(runs[name].mean()) if name in runs else math.nan

    def ratio(runs: pd.DataFrame, ours: str, base: str) -> str:
        r = mean(runs, ours) / mean(runs, base)
        return NONE if math.isnan(r) else f"{r:.2f}x"

    def against(runs: pd.DataFrame, ours: str, base: str, digits: int) -> str:
        spread, base_mean = _spread(runs, ours, digits), mean(runs, base)
        return f"{spread} ({base_mean:.{digits}f}; {ratio(runs, ours, base)})"

    header = [
        "family",
        "configuration",
        "seeds",
        "PNMI",
        "k-means PNMI",
        "PNMI ratio",
        "code ABX within %",
        "code ABX across %",
        "k-means ABX across %",
        "across ratio",
        "speaker probe, latents",
        "speaker probe, MFCC (chance)",
        "bitrate",
        "train s",
    ]
    if short:
        header = [
            "family",
            "configuration",
            "seeds",
            "PNMI (k-means; ratio)",
            "code ABX within %",
            "code ABX across % (k-means; ratio)",
            "speaker probe",
            "bitrate",
            "train s",
        ]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for name in dict.fromkeys(family):
        mine = table[family.to_numpy() == name]
        mine_labels = labels[family.to_numpy() == name]
        configs = {
            label: mine[mine_labels.to_numpy() == label] for label in dict.fromkeys(mine_labels)
        }
        most = max(len(r) for r in configs.values())
        best = max(  # the bar is relative to k-means at the same K: PNMI grows with K
            (label for label, r in configs.items() if len(r) == most),
            key=lambda label: (
                mean(configs[label], "vqvae.pnmi") / mean(configs[label], "kmeans_mfcc.pnmi")
            ),
        )
        runs = configs[best]
        chance = mean(runs, "vqvae.speaker_probe.chance")
        mfcc_probe = _spread(runs, "mfcc.speaker_probe.frames_20ms", 3)
        if not math.isnan(chance):
            mfcc_probe += f" ({chance:.3f})"
        if short:
            cells = [
                name,
                best,
                str(len(runs)),
                against(runs, "vqvae.pnmi", "kmeans_mfcc.pnmi", 3),
                _spread(runs, "vqvae.abx.code.within", 2),
                against(runs, "vqvae.abx.code.across", "kmeans_mfcc.abx.code.across", 2),
                _spread(runs, "vqvae.speaker_probe.latent", 3),
                _spread(runs, "vqvae.bitrate", 0),
                _spread(runs, "train_seconds", 0),
            ]
            lines.append("| " + " | ".join(cells) + " |")
            continue
        cells = [
            name,
            best,
            str(len(runs)),
            _spread(runs, "vqvae.pnmi", 3),
            _spread(runs, "kmeans_mfcc.pnmi", 3),
            ratio(runs, "vqvae.pnmi", "kmeans_mfcc.pnmi"),
            _spread(runs, "vqvae.abx.code.within", 2),
            _spread(runs, "vqvae.abx.code.across", 2),
            _spread(runs, "kmeans_mfcc.abx.code.across", 2),
            ratio(runs, "vqvae.abx.code.across", "kmeans_mfcc.abx.code.across"),
            _spread(runs, "vqvae.speaker_probe.latent", 3),
            mfcc_probe,
            _spread(runs, "vqvae.bitrate", 0),
            _spread(runs, "train_seconds", 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


DEFAULT_SYSTEMS = (
    "vqvae",
    "kmeans_mfcc",
    "kmeans_mfcc_matched",
    "kmeans_latent",
    "vqvae_dpdp",
    "kmeans_mfcc_dpdp",
    "kmeans_latent_dpdp",
    "random",
)
DEFAULT_ABX = (
    ("VQ-VAE latents (continuous)", "vqvae", "latent"),
    ("VQ-VAE code vectors", "vqvae", "code"),
    ("k-means on MFCC, centroids", "kmeans_mfcc", "code"),
    ("k-means on MFCC at equal perplexity, centroids", "kmeans_mfcc_matched", "code"),
    ("k-means on the latents, centroids", "kmeans_latent", "code"),
    ("VQ-VAE codes after DPDP", "vqvae_dpdp", "code"),
    ("k-means on MFCC after DPDP", "kmeans_mfcc_dpdp", "code"),
    ("MFCC frames paired to 20 ms", "mfcc", "frames_20ms"),
    ("MFCC frames at 10 ms", "mfcc", "frames_10ms"),
)


def default_markdown(report: Mapping[str, dict]) -> str:
    """The committed run's tables (reports/eval.json, all frames): every system's clustering
    and boundary scores, then its ABX; systems the report lacks are left out."""
    cols = [
        ("NMI", "nmi", 3),
        ("AMI", "ami", 3),
        ("ARI", "ari", 3),
        ("PNMI", "pnmi", 3),
        ("phone purity", "phone_purity", 3),
        ("one-to-one", "one_to_one", 3),
        ("perplexity", "code_perplexity", 1),
        ("bitrate", "bitrate", 0),
        ("boundary F1", "boundary_f1", 3),
        ("mean run", "mean_run_length", 2),
    ]
    k = report["vqvae"]["all"]["codes_used"] if "vqvae" in report else "?"
    lines = [
        f"| system (K={k}) | " + " | ".join(c[0] for c in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for system in DEFAULT_SYSTEMS:
        if system not in report or "all" not in report[system]:
            continue
        r = report[system]["all"]
        name = f"{system} (K'={report[system]['k']})" if "k" in report[system] else system
        lines.append(
            f"| {name} | "
            + " | ".join(
                f"{r[key]:.{d}f}" if r.get(key) is not None else NONE for _, key, d in cols
            )
            + " |"
        )
    lines += [
        "",
        "| ABX error %, libri-light's `eval_ABX` | items | within speaker | across speaker |",
        "|---|---:|---:|---:|",
    ]
    for label, system, rep in DEFAULT_ABX:
        a = report.get(system, {}).get("abx", {}).get(rep)
        if a is None:
            continue
        cells = [f"{a[s]:.2f}" if a.get(s) is not None else NONE for s in ("within", "across")]
        lines.append(f"| {label} | {a['items']:,} | {cells[0]} | {cells[1]} |")
    probes = [
        (label, report[system]["speaker_probe"], rep)
        for label, system, rep in DEFAULT_PROBE
        if rep in report.get(system, {}).get("speaker_probe", {})
    ]
    if probes:
        lines += [
            "",
            f"| linear speaker-ID probe (chance {probes[0][1]['chance']:.3f}) | accuracy |",
            "|---|---:|",
        ]
        lines += [f"| {label} | {found[rep]:.3f} |" for label, found, rep in probes]
    return "\n".join(lines) + "\n"


DEFAULT_PROBE = (
    ("VQ-VAE latents (continuous)", "vqvae", "latent"),
    ("VQ-VAE code vectors", "vqvae", "code"),
    ("k-means on MFCC, centroids", "kmeans_mfcc", "code"),
    ("k-means on the latents, centroids", "kmeans_latent", "code"),
    ("MFCC frames paired to 20 ms", "mfcc", "frames_20ms"),
)


HEADLINE_ROWS = (
    ("VQ-VAE codes", "vqvae"),
    ("k-means on the MFCCs it reads (same K)", "kmeans_mfcc"),
    ("k-means on MFCC at equal perplexity", "kmeans_mfcc_matched"),
    ("random codes", "random"),
)


def headline_markdown(report: Mapping[str, dict]) -> str:
    """The README's one small table of a run (reports/eval.json, all frames): the learned codes
    beside the baselines scored in the same run, PNMI, purity, code ABX and bitrate."""
    lines = [
        "| system | PNMI | phone purity | code ABX within % | code ABX across % | bitrate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, system in HEADLINE_ROWS:
        if system not in report or "all" not in report[system]:
            continue
        r, abx = report[system]["all"], report[system].get("abx", {}).get("code", {})
        if "k" in report[system]:
            label = f"{label} (K'={report[system]['k']})"
        cells = [f"{r['pnmi']:.3f}", f"{r['phone_purity']:.3f}"]
        cells += [f"{abx[s]:.2f}" if abx.get(s) is not None else NONE for s in ("within", "across")]
        lines.append(f"| {label} | " + " | ".join([*cells, f"{r['bitrate']:.0f}"]) + " |")
    return "\n".join(lines) + "\n"


RESYNTHESIS_LABELS = {
    "wavenet": "the model's WaveNet decoder (its codes, generated as audio)",
    "original": "original recordings",
    "vocoder_ceiling": "vocoder ceiling (Griffin-Lim of the original's log-mel)",
    "vqvae": "VQ-VAE codes",
    "kmeans_mfcc": "k-means on MFCC (same K)",
    "kmeans_latent": "k-means on the latents (same K)",
}


def resynthesis_markdown(synthesis: Mapping[str, object]) -> str:
    """The resynthesis table of a run (metrics/synthesis.json `units`): per system its word
    and phone error rates, MCD, conversions' target-speaker share (chance beside it) and
    real-time factor."""
    units = synthesis.get("units")
    if not isinstance(units, Mapping):
        raise ValueError("metrics/synthesis.json has no `units` (rerun the synthesize stage)")
    lines = [
        "| units resynthesized | word error % | phone error % | MCD dB | conversions to target "
        "(chance) | RTF |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for system, row in units["systems"].items():
        wer = NONE if row.get("wer") is None else f"{100 * row['wer']:.1f}"
        per = NONE if row.get("per") is None else f"{100 * row['per']:.1f}"
        mcd = NONE if row.get("mcd_db") is None else f"{row['mcd_db']:.2f}"
        share = NONE
        if row.get("conversion_target_share") is not None:
            share = f"{row['conversion_target_share']:.2f} ({row['conversion_chance']:.3f})"
        rtf = NONE if row.get("rtf") is None else f"{row['rtf']:.2f}"
        label = RESYNTHESIS_LABELS.get(system, system)
        lines.append(f"| {label} | {wer} | {per} | {mcd} | {share} | {rtf} |")
    return "\n".join(lines) + "\n"


def config_labels(table: pd.DataFrame, defaults: Mapping[str, object] | None = None) -> pd.Series:
    """Each run's configuration, named by the params (seed aside) that differ between runs and
    from `defaults` (dotted names without their section), "default" when none does."""
    defaults = defaults or {}
    cols = [c for c in config_columns(table) if table[c].astype(str).nunique() > 1]
    keys = (
        table[cols].astype(str).agg(", ".join, axis=1)
        if cols
        else pd.Series(["default"] * len(table), index=table.index)
    )
    names = {}
    for key in dict.fromkeys(keys):
        first = table[keys.to_numpy() == key].iloc[0]
        changed = [c for c in cols if c not in defaults or _cell(first[c]) != _cell(defaults[c])]
        names[key] = ", ".join(f"{c.split('.', 1)[1]}={_cell(first[c])}" for c in changed)
    return keys.map(lambda k: names[k] or "default")


def plot_curves(curves: Mapping[str, list[pd.DataFrame]], path: Path, metric: str) -> None:
    """One panel per configuration: `metric` (a dvclive curve: step, value) of each seed's run
    against the training step, thin, and their mean, thick; for checking that longer training
    does not overfit (the validation loss turning up while the training loss falls)."""
    n = len(curves)
    if n == 0:
        raise ValueError(f"no {metric} curves to plot")
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.5 * ncols, 3.4 * nrows), squeeze=False)
    for ax, (label, runs) in zip(axes.flat, curves.items(), strict=False):
        for run in runs:
            ax.plot(run["step"], run.iloc[:, 1], lw=0.8, alpha=0.6)
        joined = pd.concat([r.set_index("step").iloc[:, 0] for r in runs], axis=1)
        mean = joined.dropna().mean(axis=1)
        ax.plot(mean.index, mean.to_numpy(), "k-", lw=2, label=f"mean of {len(runs)}")
        if len(mean):
            best = int(mean.to_numpy().argmin())
            ax.axvline(mean.index[best], color="gray", ls=":", lw=1)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    save(fig, path)


def _cell(x: object) -> str:
    """A param value as written in params.yaml: 100 not 100.0 (rows of mixed dtype are float)."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def codebook_animation(snapshots: pd.DataFrame, path: Path, seed: int = 0) -> int:
    """GIF of one run's snapshots: a UMAP fitted once on every snapshot's codes and latents (so
    the frames share axes), one frame per epoch; latents coloured by phone, codes as black x.
    Returns the number of frames."""
    import umap as umap_lib
    from PIL import Image

    vectors = np.stack(snapshots["vector"].to_numpy())
    xy = umap_lib.UMAP(
        n_neighbors=min(15, len(vectors) - 1), random_state=seed, n_jobs=1
    ).fit_transform(vectors)
    epochs = sorted(snapshots["epoch"].unique())
    phones = sorted(set(snapshots.loc[snapshots["kind"] == "latent", "phone"]))
    cmap = plt.get_cmap("hsv")
    colour = {p: cmap(i / max(1, len(phones))) for i, p in enumerate(phones)}
    fig, ax = plt.subplots(figsize=(7, 7))
    pad = 0.05 * (xy.max(0) - xy.min(0))
    lo, hi = xy.min(0) - pad, xy.max(0) + pad

    def frame(i: int) -> None:
        ax.clear()
        sel = (snapshots["epoch"] == epochs[i]).to_numpy()
        lat = sel & (snapshots["kind"] == "latent").to_numpy()
        code = sel & (snapshots["kind"] == "code").to_numpy()
        ax.scatter(
            xy[lat, 0],
            xy[lat, 1],
            s=4,
            alpha=0.6,
            linewidths=0,
            c=[colour[p] for p in snapshots.loc[lat, "phone"]],
        )
        ax.scatter(xy[code, 0], xy[code, 1], marker="x", s=30, c="black", linewidths=1)
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"codebook (x) and val latents (by phone), epoch {epochs[i]}")

    images = []
    for i in range(len(epochs)):
        frame(i)
        fig.canvas.draw()
        images.append(Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB"))
    plt.close(fig)
    with atomic.atomic_path(path) as tmp:
        images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=600, loop=0
        )
    return len(images)
