"""Figures of the codes on held-out speech (the plots stage).

Images (matplotlib, PNG) for what a researcher looks at once per run, and data files (JSON rows)
for what `dvc plots diff` should overlay across experiments:
- `code_order`: codes sorted by their majority phone (phones in inventory order), used on every
  code axis so a good codebook shows as a block diagonal;
- `heatmap`: phone x code, rows normalized;
- `bigrams`: phone and code bigram matrices (next given current), with and without the diagonal;
- `frequencies`: frames per phone and per code;
- `umap`: held-out latents and the codebook in 2-d, coloured by code, by phone and by speaker;
- `utterance_figure`: waveform, spectrogram, input features, softmax of negative distances to the
  codes, chosen codes over the phone alignment, and the reconstruction, for a few utterances;
- `distance_histograms`: latent to chosen code, latent to other codes, between codes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from vqspeech.evaluate.metrics import Contingency
from vqspeech.io import atomic
from vqspeech.io.figure import save
from vqspeech.phones import ARPABET, SILENCES

PHONE_ORDER = (*ARPABET, *SILENCES)


def phone_rank(phones: Sequence[str]) -> list[str]:
    """Phones present, in inventory order."""
    present = set(phones)
    return [p for p in PHONE_ORDER if p in present]


def code_order(table: Contingency, phones: list[str]) -> list[int]:
    """Codes sorted by their majority phone's position in `phones`, then by frames (most first)."""
    rows = {p: i for i, p in enumerate(table.phones)}
    counts = table.counts[[rows[p] for p in phones]]
    majority = counts.argmax(axis=0)
    order = np.lexsort((-counts.sum(axis=0), majority))
    return [table.codes[i] for i in order]


def _matrix(table: Contingency, phones: list[str], codes: list[int]) -> np.ndarray:
    rows = {p: i for i, p in enumerate(table.phones)}
    cols = {c: j for j, c in enumerate(table.codes)}
    return table.counts[np.ix_([rows[p] for p in phones], [cols[c] for c in codes])]


def heatmap(table: Contingency, path: Path, title: str = "") -> None:
    """P(code | phone): rows normalized, codes ordered by majority phone."""
    phones = phone_rank(table.phones)
    codes = code_order(table, phones)
    m = _matrix(table, phones, codes).astype(float)
    m /= np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.14 * len(codes) + 2), 0.22 * len(phones) + 1.5))
    im = ax.imshow(m, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_yticks(range(len(phones)), phones, fontsize=7)
    ax.set_xticks(range(len(codes)), [str(c) for c in codes], fontsize=5, rotation=90)
    ax.set_xlabel("code (ordered by majority phone)")
    ax.set_ylabel("phone")
    ax.set_title(title or "P(code | phone) on held-out frames")
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    save(fig, path)


def bigram_counts(seqs: Sequence[np.ndarray], labels: list) -> np.ndarray:
    """Counts of (current, next) label pairs within each sequence, in `labels` order."""
    index = {label: i for i, label in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for s in seqs:
        idx = np.array([index[x] for x in s.tolist()], dtype=np.int64)
        np.add.at(m, (idx[:-1], idx[1:]), 1)
    return m


def bigrams(
    phone_seqs: Sequence[np.ndarray],
    code_seqs: Sequence[np.ndarray],
    table: Contingency,
    path: Path,
) -> None:
    """P(next | current) for phones and codes, with the diagonal and without it (the
    transitions only, renormalized), one panel each."""
    phones = phone_rank(table.phones)
    codes = code_order(table, phones)
    fig, axes = plt.subplots(2, 2, figsize=(14, 12))
    for row, (name, seqs, labels) in enumerate(
        (("phone", phone_seqs, phones), ("code", code_seqs, codes))
    ):
        counts = bigram_counts(seqs, labels).astype(float)
        for col, keep_diag in enumerate((True, False)):
            m = counts.copy()
            if not keep_diag:
                np.fill_diagonal(m, 0)
            m /= np.maximum(m.sum(axis=1, keepdims=True), 1)
            ax = axes[row, col]
            im = ax.imshow(m, cmap="magma", interpolation="nearest")
            ticks = [str(x) for x in labels]
            size = 6 if name == "phone" else 4
            ax.set_xticks(range(len(labels)), ticks, fontsize=size, rotation=90)
            ax.set_yticks(range(len(labels)), ticks, fontsize=size)
            ax.set_xlabel(f"next {name}")
            ax.set_ylabel(f"current {name}")
            ax.set_title(
                f"{name} bigrams, P(next | current), "
                + ("with the diagonal" if keep_diag else "diagonal removed")
            )
            fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    save(fig, path)


def frequencies(table: Contingency) -> tuple[list[dict], list[dict]]:
    """Rows for the phone- and code-frequency bar charts."""
    phones = phone_rank(table.phones)
    rows = {p: i for i, p in enumerate(table.phones)}
    phone_rows = [{"phone": p, "frames": int(table.counts[rows[p]].sum())} for p in phones]
    majority = [table.phones[i] for i in table.counts.argmax(axis=0)]
    code_rows = [
        {"code": str(c), "frames": int(n), "majority_phone": m}
        for c, n, m in zip(table.codes, table.counts.sum(axis=0), majority, strict=True)
    ]
    return phone_rows, code_rows


def distance_histograms(
    latents: np.ndarray, codes: np.ndarray, codebook: np.ndarray, bins: int = 60
) -> list[dict]:
    """Densities of Euclidean distances: latent to its chosen code, latent to every other code,
    and between codes (each pair once), on shared bins; one row per bin."""
    return streamed_distance_histograms(lambda: [(latents, codes)], codebook, bins)


def streamed_distance_histograms(
    chunks: Callable[[], Iterable[tuple[np.ndarray, np.ndarray]]],
    codebook: np.ndarray,
    bins: int = 60,
) -> list[dict]:
    """`distance_histograms` of latents and their codes that `chunks()` yields a part at a time
    (called twice: the largest distance, then the counts)."""

    def distances(latents: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = np.sqrt(
            np.maximum(
                (latents**2).sum(1)[:, None]
                - 2 * latents @ codebook.T
                + (codebook**2).sum(1)[None],
                0.0,
            )
        )
        chosen = d[np.arange(len(d)), codes]
        return chosen, d[np.arange(codebook.shape[0])[None, :] != codes[:, None]]

    iu = np.triu_indices(len(codebook), 1)
    between = np.sqrt(((codebook[:, None] - codebook[None]) ** 2).sum(-1))[iu]
    top = float(between.max()) if len(between) else 0.0
    for part in chunks():
        chosen, others = distances(*part)
        top = max(top, float(chosen.max(initial=0.0)), float(others.max(initial=0.0)))
    edges = np.linspace(0.0, top * 1.0001, bins + 1)
    counts = {
        "latent_to_chosen": np.zeros(bins, np.int64),
        "latent_to_others": np.zeros(bins, np.int64),
    }
    for part in chunks():
        for name, x in zip(counts, distances(*part), strict=True):
            counts[name] += np.histogram(x, edges)[0]
    counts["between_codes"] = np.histogram(between, edges)[0]
    width = np.diff(edges)
    dens = {
        name: c / width / c.sum() if c.sum() else np.zeros(bins) for name, c in counts.items()
    }  # as np.histogram's density=True
    centres = (edges[:-1] + edges[1:]) / 2
    return [
        {"distance": round(float(c), 4), **{k: round(float(v[i]), 5) for k, v in dens.items()}}
        for i, c in enumerate(centres)
    ]


def _categorical(n: int) -> np.ndarray:
    cmap = plt.get_cmap("tab20")
    return (
        np.array([cmap(i % 20) for i in range(n)])
        if n <= 20
        else plt.get_cmap("hsv")(np.linspace(0, 1, n, endpoint=False))
    )


def umap(
    latents: np.ndarray,
    codes: np.ndarray,
    phones: np.ndarray,
    speakers: np.ndarray,
    codebook: np.ndarray,
    path: Path,
    seed: int,
) -> None:
    """UMAP of latents with the codebook embedded alongside, in three colourings."""
    import umap as umap_lib  # heavy (numba): only here

    points = np.concatenate([latents, codebook])
    reducer = umap_lib.UMAP(
        n_neighbors=min(15, len(points) - 1), min_dist=0.1, random_state=seed, n_jobs=1
    )
    xy = reducer.fit_transform(points)
    pts, book = xy[: len(latents)], xy[len(latents) :]
    fig, axes = plt.subplots(1, 3, figsize=(21, 7))
    for ax, (name, labels) in zip(
        axes, (("code", codes), ("phone", phones), ("speaker", speakers)), strict=True
    ):
        names = phone_rank(labels) if name == "phone" else sorted(set(labels.tolist()))
        colour = dict(zip(names, _categorical(len(names)), strict=True))
        ax.scatter(
            pts[:, 0],
            pts[:, 1],
            s=3,
            c=[colour[x] for x in labels.tolist()],
            alpha=0.6,
            linewidths=0,
        )
        ax.scatter(
            book[:, 0], book[:, 1], marker="x", s=30, c="black", linewidths=1, label="codebook"
        )
        if name == "speaker":
            for n in names:
                ax.scatter([], [], s=20, color=colour[n], label=n)
            ax.legend(loc="best", fontsize=8)
        elif name == "phone":
            for n in names:
                sel = labels == n
                if sel.sum() >= 5:
                    cx, cy = np.median(pts[sel], axis=0)
                    ax.text(cx, cy, n, fontsize=7, weight="bold", ha="center")
        else:
            ax.legend(loc="best", fontsize=8)
        ax.set_title(f"latents coloured by {name} ({len(latents)} held-out frames)")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    save(fig, path)


@dataclass
class UtterancePanels:
    """What the comparison figure shows for one utterance (times in seconds)."""

    utterance_id: str
    audio: np.ndarray  # samples from the first feature frame on
    sample_rate: int
    features: np.ndarray  # [T, D], normalized input
    soft: np.ndarray  # [L, K] softmax of negative squared distances, columns in code order
    codes: np.ndarray  # [L] positions of the chosen codes in code order
    phones: list[tuple[float, float, str]]  # alignment intervals, shifted to the features
    reconstruction: np.ndarray | None  # [2 L, D], normalized; None for a WaveNet decoder


def utterance_figure(
    panels: list[UtterancePanels], path: Path, seconds: float, hop_s: float = 0.01
) -> None:
    """One column per utterance: waveform, spectrogram, input features, soft code assignment,
    chosen codes over the phone alignment, reconstruction; all on one time axis, the first
    `seconds` of each utterance (so phone labels stay readable)."""
    import librosa  # heavy: only here

    n = len(panels)
    ratios = [1, 1.4, 1.4, 1.6, 1.4, 1.4]
    fig, axes = plt.subplots(
        6, n, figsize=(6 * n, 14), squeeze=False, gridspec_kw={"height_ratios": ratios}
    )
    for col, p in enumerate(panels):
        ax = axes[:, col]
        t_end = min(len(p.features) * hop_s, seconds)
        ax[0].plot(np.arange(len(p.audio)) / p.sample_rate, p.audio, lw=0.3, color="0.2")
        ax[0].set_title(p.utterance_id)
        ax[0].set_ylabel("waveform")
        spec = librosa.amplitude_to_db(
            np.abs(librosa.stft(p.audio, n_fft=512, hop_length=160)), ref=np.max
        )
        ax[1].imshow(
            spec,
            origin="lower",
            aspect="auto",
            cmap="magma",
            vmin=-80,
            extent=(0, len(p.audio) / p.sample_rate, 0, p.sample_rate / 2000),
        )
        ax[1].set_ylabel("spectrogram (kHz)")
        for a, x, label in (
            (ax[2], p.features, "input features"),
            (
                ax[5],
                p.reconstruction,
                "reconstruction"
                if p.reconstruction is None or p.reconstruction.shape[1] == p.features.shape[1]
                else "reconstruction (target)",
            ),
        ):
            if x is None:
                a.text(
                    0.5,
                    0.5,
                    "no feature reconstruction (a WaveNet decoder's audio is in "
                    "plots/synthesis; VQ-CPC has no decoder)",
                    ha="center",
                    va="center",
                    transform=a.transAxes,
                )
                a.set_ylabel(label)
                continue
            a.imshow(
                x.T,
                origin="lower",
                aspect="auto",
                cmap="coolwarm",
                vmin=-3,
                vmax=3,
                extent=(0, len(x) * hop_s, 0, x.shape[1]),
            )
            a.set_ylabel(label)
        lat = 2 * hop_s
        ax[3].imshow(
            p.soft.T,
            origin="lower",
            aspect="auto",
            cmap="Greys",
            vmin=0,
            vmax=1,
            extent=(0, len(p.soft) * lat, 0, p.soft.shape[1]),
        )
        ax[3].set_ylabel("softmax(-distance)\nover codes")
        centres = (np.arange(len(p.codes)) + 0.5) * lat
        ax[4].step(centres, p.codes, where="mid", lw=0.8, color="tab:blue")
        ax[4].set_ylabel("chosen code\n(majority-phone order)")
        ax[4].set_ylim(-12, p.soft.shape[1])
        for i, (s, e, label) in enumerate(p.phones):
            if e <= 0 or s >= t_end:
                continue
            ax[4].axvspan(
                max(s, 0), min(e, t_end), ymin=0, ymax=0.14, color="0.85" if i % 2 else "0.7"
            )
            ax[4].text(
                (max(s, 0) + min(e, t_end)) / 2, -7, label, ha="center", va="center", fontsize=6
            )
            for a in ax[2:5]:
                a.axvline(max(s, 0), color="0.5", lw=0.3)
        for a in ax:
            a.set_xlim(0, t_end)
        ax[5].set_xlabel("time (s)")
    fig.tight_layout()
    save(fig, path)


def write_rows(path: Path, rows: list[dict]) -> None:
    """A JSON list of rows, the format `dvc plots` reads."""
    import json

    atomic.write_text(path, json.dumps(rows, indent=1) + "\n")


def sequences(frames: pd.DataFrame, column: str) -> list[np.ndarray]:
    """Per-utterance arrays of one column of a frame table grouped by utterance, in its order."""
    utt = frames["utterance_id"].to_numpy()
    cut = np.flatnonzero(utt[1:] != utt[:-1]) + 1 if len(utt) else []
    return np.split(frames[column].to_numpy(), cut)
