"""How close pocketsphinx's forced alignment comes to exact phone boundaries.

Builds the built-in corpus of params.yaml in a scratch folder (the download stage), aligns a
seeded sample of its utterances from their text alone (vqspeech.data.forcealign), and compares
every phone boundary both alignments share with the engine's exact one: the share within 20 ms
and within 50 ms, per engine and in all, and the utterances pocketsphinx could not align.
Writes the table into docs/corpus.md (section `forcealign`).
Usage: python benchmarks/forcealign.py [--utterances N]
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import typer
from benchlib import REPO, run_stage, stamp, table, update_section


def engine_of(speaker: str) -> str:
    head = speaker.split("-")[0]
    return head if head in ("festival", "espeak") else "flite"


def main(utterances: int = 300) -> None:
    from vqspeech.data import forcealign, manifest
    from vqspeech.data.textgrid import read_phones

    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        (Path(tmp) / "params.yaml").write_text((REPO / "params.yaml").read_text())
        run_stage("download", Path(tmp))
        rows = manifest.read("data/manifest.parquet").to_pylist()
        rng = np.random.default_rng(0)
        chosen = sorted(rng.choice(len(rows), min(utterances, len(rows)), replace=False))
        aligner = forcealign.Aligner()
        errors: dict[str, list[np.ndarray]] = {}
        failed: dict[str, int] = {}
        audio_s, started = 0.0, time.perf_counter()
        for i in chosen:
            r = rows[i]
            engine = engine_of(r["speaker"])
            samples = forcealign.load_16k(Path(r["path"]))
            audio_s += len(samples) / 16000
            try:
                hyp, _ = aligner.align(samples, forcealign.words(r["text"]), r["utterance_id"])
            except forcealign.AlignError:
                failed[engine] = failed.get(engine, 0) + 1
                continue
            ref = read_phones(r["textgrid"]).intervals
            errors.setdefault(engine, []).append(forcealign.boundary_errors(ref, hyp))
        wall = time.perf_counter() - started
    body = []
    for engine in [*sorted(errors), "all"]:
        parts = errors[engine] if engine != "all" else [e for v in errors.values() for e in v]
        e = np.concatenate(parts)
        n_failed = failed.get(engine, 0) if engine != "all" else sum(failed.values())
        body.append(
            [
                engine,
                len(parts) + n_failed,
                n_failed,
                len(e),
                f"{np.mean(e <= 0.02):.1%}",
                f"{np.mean(e <= 0.05):.1%}",
                f"{1000 * np.median(e):.0f} ms",
            ]
        )
    header = [
        "engine",
        "utterances",
        "not aligned",
        "boundaries compared",
        "within 20 ms",
        "within 50 ms",
        "median error",
    ]
    text = "\n".join(
        [
            "### pocketsphinx against the built-in corpus's exact boundaries",
            "",
            table(header, body),
            "",
            f"{len(chosen)} utterances of the default corpus (seeded sample), aligned from their "
            "text "
            f"alone: {audio_s / wall:.0f}x real time on one thread. A boundary is the start or "
            "end of "
            "a speech phone that both alignments have (the phone sequences matched, so a word the "
            "engine and CMUdict pronounce differently is left out). Written by "
            f"`python benchmarks/forcealign.py`. {stamp()}",
        ]
    )
    update_section("forcealign", text, REPO / "docs" / "corpus.md")
    print(text)


if __name__ == "__main__":
    typer.run(main)
