"""How each knob of the built-in corpus moves its difficulty: the knob table of docs/corpus.md.

For each configuration (the repository's params.yaml with a few `data.builtin` keys changed) it
runs the download, features and stats stages in a scratch folder and measures, on the test
split, what evaluate reports for the input-only baselines (vqspeech.evaluate.difficulty):
k-means PNMI at K = model.quantizer.codebook_size, and ABX of MFCC frames within and across
speakers at 10 ms (libri-light's published MFCC rate) and paired to 20 ms (as k-means sees
them). Writes the table into docs/corpus.md (section `corpus-knobs`) and the synthesis speed into
docs/benchmarks.md (section `corpus`). About a minute per configuration on 2 cores.
Usage: python benchmarks/corpus.py [--only NAME ...]
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from benchlib import REPO, run_stage, stamp, table, update_section

FLITE_ONLY = {
    "voices": ["flite/awb", "flite/rms", "flite/slt", "flite/kal16"],
    "held_out": {"val": ["flite/kal16"], "test": ["flite/rms"]},
}
NO_SPEAKER_DRAWS = {
    "warp": {"low": 1.0, "high": 1.0},
    "f0_scale": {"low": 1.0, "high": 1.0},
    "tempo": {"low": 1.0, "high": 1.0},
}
NO_PROSODY = {"prosody": {"stretch": 0.0, "f0_mean": 0.0, "f0_range": 0.0}}
# (name, what it is, data.builtin keys over the preset of params.yaml)
CONFIGS: list[tuple[str, str, dict]] = [
    (
        "flite12",
        "the earlier corpus: 4 flite voices x 3 pitch/tempo variants",
        {"preset": "flite12"},
    ),
    (
        "engines",
        "15 voices of 3 engines, 4 identical speakers each, no prosody, no channel",
        {**NO_SPEAKER_DRAWS, **NO_PROSODY, "channel": "off"},
    ),
    (
        "+ speakers",
        "+ vocal-tract warp, f0 and tempo drawn per speaker",
        {**NO_PROSODY, "channel": "off"},
    ),
    ("+ prosody", "+ per-utterance duration, f0 mean and range", {"channel": "off"}),
    (
        "+ mild channel",
        "+ microphone EQ, room (half the utterances), noise 20-35 dB: the default",
        {},
    ),
    (
        "strong channel",
        "the default with the strong channel (noise 5-20 dB, rooms 0.3-0.8 s)",
        {"channel": "strong"},
    ),
    ("flite only", "the default, its 4 flite voices only (test: rms, val: kal16)", FLITE_ONLY),
    ("no warp", "the default without the vocal-tract warp", {"warp": {"low": 1.0, "high": 1.0}}),
]
TARGETS = "targets for the default: PNMI at most 0.35, ABX across at least 8 %, within at least 3 %"


def measure(params: dict, work: Path) -> tuple[dict, float, float]:
    from vqspeech.evaluate import difficulty

    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    wall, _ = run_stage("download", work)
    for stage in ("features", "stats"):
        run_stage(stage, work)
    hours = json.loads((work / "metrics/download.json").read_text())["hours"]
    abx = params.get("eval", {}).get("abx", {})
    k = params.get("model", {}).get("quantizer", {}).get("codebook_size", 64)
    with contextlib.chdir(work):  # the manifest's paths are relative to its repository
        result = difficulty.measure(
            "data/features",
            "data/manifest.parquet",
            "data/stats.json",
            split="test",
            k=k,
            seed=params.get("train", {}).get("seed", 0),
            max_group=abx.get("max_group", 10),
            max_x_across=abx.get("max_x_across", 5),
        )
    return result, hours, wall


def main(
    only: Annotated[list[str] | None, typer.Option(help="Configurations to run.")] = None,
) -> None:
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    rows, speed = [], []
    for name, what, keys in CONFIGS:
        if only and name not in only:
            continue
        params = copy.deepcopy(base)
        params["data"]["corpus"] = "builtin"
        builtin = params["data"].setdefault("builtin", {})
        if keys.get("preset") == "flite12":
            builtin.clear()
        builtin.update(copy.deepcopy(keys))
        params["features"].pop("split", None)  # the corpus's own held-out voices
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            r, hours, wall = measure(params, Path(tmp))
        print(name, r, f"{time.perf_counter() - started:.0f} s", flush=True)
        paired = f"{r['mfcc_abx_within_20ms']:.2f} / {r['mfcc_abx_across_20ms']:.2f} %"
        rows.append(
            [
                name,
                what,
                f"{hours:.2f} h",
                r["speakers"],
                f"{r['kmeans_mfcc_pnmi']:.3f}",
                f"{r['mfcc_abx_within']:.2f} %",
                f"{r['mfcc_abx_across']:.2f} %",
                paired,
            ]
        )
        speed.append([name, f"{hours:.2f} h", f"{wall:.1f} s", f"{hours * 3600 / wall:.0f}x"])
    header = [
        "corpus",
        "what changes",
        "audio",
        "test speakers",
        "k-means MFCC PNMI",
        "MFCC ABX within",
        "MFCC ABX across",
        "paired to 20 ms, within / across",
    ]
    update_section(
        "corpus-knobs",
        "\n".join(
            [
                table(header, rows),
                "",
                f"{TARGETS}. Written by `python benchmarks/corpus.py`; {stamp()[0].lower()}"
                f"{stamp()[1:]}",
            ]
        ),
        REPO / "docs/corpus.md",
    )
    update_section(
        "corpus",
        "\n".join(
            [
                "## download: built-in corpus configurations",
                "",
                table(["corpus", "audio", "download stage", "x real time"], speed),
                "",
                f"{stamp()} Target: the default corpus in under 3 minutes on 2 cores.",
            ]
        ),
    )


if __name__ == "__main__":
    typer.run(main)
