"""Figures written as outputs: PNG, atomically, the same bytes for the same figure."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vqspeech.io import atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def save(fig: Figure, path: Path) -> None:
    """Write a PNG atomically (no timestamp metadata) and close the figure."""
    import matplotlib.pyplot as plt

    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
