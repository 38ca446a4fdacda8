"""Figure helpers: code order, bigram counts, distance histograms, frequencies, PNG output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vqspeech.evaluate.metrics import Contingency
from vqspeech.report import plots


def test_codes_are_ordered_by_majority_phone_in_inventory_order():
    phones = ["T", "T", "AA", "AA", "AA", "sil", "T", "AA"]
    codes = [5, 5, 2, 9, 9, 7, 5, 2]
    table = Contingency.of(phones, codes)
    ranked = plots.phone_rank(table.phones)
    assert ranked == ["AA", "T", "sil"]  # ARPABET order, silences last
    # AA's codes first (9 and 2 both have 2 AA frames: more frames first, then ...), then T, sil
    order = plots.code_order(table, ranked)
    assert order[:2] in ([9, 2], [2, 9]) and order[2:] == [5, 7]


def test_bigram_counts_stay_within_utterances():
    seqs = [np.array(["a", "a", "b"]), np.array(["b", "a"])]
    m = plots.bigram_counts(seqs, ["a", "b"])
    np.testing.assert_array_equal(m, [[1, 1], [1, 0]])  # no b -> b across the utterance edge


def test_distance_histograms_known_geometry():
    codebook = np.array([[0.0, 0.0], [3.0, 4.0]])  # 5 apart
    latents = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])  # exactly on their codes
    rows = plots.distance_histograms(latents, np.array([0, 1, 0]), codebook, bins=10)
    centres = np.array([r["distance"] for r in rows])
    width = centres[1] - centres[0]

    def mass(key: str) -> np.ndarray:
        return np.array([r[key] for r in rows]) * width

    assert mass("latent_to_chosen")[0] == pytest.approx(1.0, rel=1e-3)  # all at distance 0
    assert mass("latent_to_others")[-1] == pytest.approx(1.0, rel=1e-3)  # all at distance 5
    assert mass("between_codes")[-1] == pytest.approx(1.0, rel=1e-3)


def test_frequencies_count_every_frame():
    table = Contingency.of(["AA", "AA", "sil", "T"], [1, 1, 3, 1])
    phone_rows, code_rows = plots.frequencies(table)
    assert phone_rows == [
        {"phone": "AA", "frames": 2},
        {"phone": "T", "frames": 1},
        {"phone": "sil", "frames": 1},
    ]
    assert code_rows == [
        {"code": "1", "frames": 3, "majority_phone": "AA"},
        {"code": "3", "frames": 1, "majority_phone": "sil"},
    ]


def test_figures_are_written_atomically_as_png(tmp_path: Path):
    rng = np.random.default_rng(0)
    phones = rng.choice(["AA", "T", "sil"], 200)
    codes = rng.integers(0, 4, 200)
    table = Contingency.of(phones, codes)
    plots.heatmap(table, tmp_path / "h.png")
    plots.bigrams(
        [phones[:100], phones[100:]], [codes[:100], codes[100:]], table, tmp_path / "b.png"
    )
    for name in ("h.png", "b.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png", "h.png"]  # no temp files


def test_umap_draws_latents_and_codebook_in_three_colourings(tmp_path: Path):
    """plots/eval/umap.png (no stage test draws it: UMAP's numba compile is 12 s a process)."""
    from PIL import Image

    g = np.random.default_rng(0)
    latents = np.concatenate([g.normal(c, 0.1, (20, 4)) for c in (0.0, 3.0)]).astype(np.float32)
    codes = np.repeat([0, 1], 20)
    phones = np.repeat(["AA", "sil"], 20)
    speakers = np.tile(["s1", "s2"], 20)
    codebook = np.array([[0.0] * 4, [3.0] * 4], dtype=np.float32)
    path = tmp_path / "umap.png"
    plots.umap(latents, codes, phones, speakers, codebook, path, seed=0)
    with Image.open(path) as image:
        width, height = image.size
    assert image.format == "PNG" and width > 2.5 * height  # three panels side by side
    assert not [p for p in tmp_path.iterdir() if p != path]  # written atomically
