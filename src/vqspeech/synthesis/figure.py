"""The synthesize stage's spectrogram comparison: a row per utterance, a column per version."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def spectrogram_figure(
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]]]],
    path: Path,
    sr: int = 16000,
    size: tuple[float, float] = (3.6, 2.6),
) -> None:
    """One row per utterance, one column per version (original, reconstruction, conversions):
    log-magnitude spectrograms (512-point STFT, 10 ms hop) on one colour scale per row; `size`:
    inches per panel."""
    import librosa
    import matplotlib.pyplot as plt

    from vqspeech.io.figure import save

    cols = max(len(versions) for _, versions in rows)
    fig, axes = plt.subplots(
        len(rows), cols, figsize=(size[0] * cols, size[1] * len(rows)), squeeze=False, sharey=True
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
            name = f"{title}: {versions[c][0]}" if c == 0 else versions[c][0]
            ax.set_title(name, fontsize=round(9 * min(1.0, size[0] / 3.6), 1))
            if c == 0:
                ax.set_ylabel("kHz")
            if r == len(rows) - 1:
                ax.set_xlabel("time (s)")
    fig.tight_layout()
    save(fig, path)


def by_system(versions: Sequence[object], utterance_id: str) -> list[tuple[str, list]]:
    """`spectrogram_figure` rows of one utterance's `resynthesis.Version`s: a row per system
    (original, vocoder_ceiling, each unit system), a column per version of it."""
    rows: dict[str, list[tuple[str, np.ndarray]]] = {}
    for v in versions:
        if v.utterance_id == utterance_id:  # type: ignore[attr-defined]
            rows.setdefault(v.system, []).append((v.name, v.audio))  # type: ignore[attr-defined]
    return list(rows.items())
