"""Benchmark align + evaluate on the default held-out split, and on the same split with one
30-minute utterance added (target: the time of the default split plus the utterance's share).

Needs a `dvc repro` of the default params (data/features, data/manifest.parquet, data/raw,
data/stats.json, models/model.pt). The long utterance is the held-out split's utterances laid
end to end until they last `--minutes` (frames, labels and TextGrid intervals concatenated, each
utterance cut to its frames), under one held-out speaker, id `long_utterance`; it is written
into a copy of the feature shards beside the others (a shard of its own) with its TextGrid and a
manifest row. Both workspaces run the real stages (`stages/align.py`, `stages/evaluate.py`) in
fresh processes, the default one first, on the same machine.
Writes its section of docs/benchmarks.md (`--no-write`: print it only).
Usage: python benchmarks/long_evaluate.py [--minutes 30] [--no-write]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import typer
import yaml
from benchlib import REPO, run_stage, stamp, table, update_section

from vqspeech.data import manifest
from vqspeech.data.textgrid import Interval, read_phones, write_phones
from vqspeech.features import shards

LONG_ID = "long_utterance"
LINKED = ("data/raw", "data/stats.json", "models/model.pt", "params.yaml")


def workspace(root: Path) -> Path:
    """A folder that runs the stages on the repository's outputs (linked, not copied)."""
    root.mkdir(parents=True)
    for rel in LINKED:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(REPO / rel)
    return root


def add_long_utterance(root: Path, split: str, minutes: float) -> tuple[int, float]:
    """Copy the shards and manifest into `root` with one long `split` utterance added:
    (its frames, the split's other seconds)."""
    features = root / "data/features"
    for path in shards.files(REPO / "data/features"):
        utts = list(shards.utterances_of(shards.read(path)))
        shards.write(features / path.name, utts, shards.read_schema_dim(path))
    table_ = manifest.read(REPO / "data/manifest.parquet")
    grids = manifest.by_id(table_, "textgrid")
    held = list(shards.iter_utterances(REPO / "data/features", split))
    want = round(minutes * 60 / shards.HOP_S)
    feats, phones, intervals, frames = [], [], [], 0
    while frames < want:
        for utt in held:
            n = len(utt.features)
            offset = frames * shards.HOP_S
            for iv in read_phones(REPO / grids[utt.utterance_id]).intervals:
                if iv.start < n * shards.HOP_S:
                    end = min(iv.end, n * shards.HOP_S)  # times to 10 us: no float overlaps
                    start, stop = round(offset + iv.start, 5), round(offset + end, 5)
                    intervals.append(Interval(start, stop, iv.label))
            feats.append(utt.features)
            phones += utt.phones
            frames += n
            if frames >= want:
                break
    duration = round(frames * shards.HOP_S, 5)
    intervals[-1] = Interval(intervals[-1].start, duration, intervals[-1].label)
    grid = root / "data/long/long_utterance.TextGrid"
    write_phones(grid, intervals, duration)
    long_utt = shards.Utterance(LONG_ID, held[0].speaker, split, np.concatenate(feats), phones)
    dim = long_utt.features.shape[1]
    shards.write(features / f"part-{len(shards.files(features)):05d}.parquet", [long_utt], dim)
    row = {
        "utterance_id": LONG_ID,
        "speaker": held[0].speaker,
        "path": "",
        "textgrid": str(grid.relative_to(root)),
        "duration_s": duration,
        "sample_rate": 16000,
        "text": "",
    }
    rows = [*table_.to_pylist(), row]
    manifest.write(
        pa.Table.from_pylist(rows, schema=manifest.SCHEMA), root / "data/manifest.parquet"
    )
    return frames, sum(len(u.features) for u in held) * shards.HOP_S


def main(minutes: float = 30.0, write: bool = True) -> None:
    split = yaml.safe_load((REPO / "params.yaml").read_text())["eval"]["split"]
    with tempfile.TemporaryDirectory() as tmp:
        plain = workspace(Path(tmp) / "default")
        for rel in ("data/features", "data/manifest.parquet"):
            (plain / rel).symlink_to(REPO / rel)
        grown = workspace(Path(tmp) / "long")
        frames, split_s = add_long_utterance(grown, split, minutes)
        times = {}
        for name, root in (("default", plain), ("long", grown)):
            for stage in ("align", "evaluate"):
                times[(name, stage)], _ = run_stage(stage, root)
                print(name, stage, f"{times[(name, stage)]:.1f} s", flush=True)
        report = json.loads((grown / "reports/eval.json").read_text())
    share = (split_s + frames * shards.HOP_S) / split_s
    rows = []
    for stage in ("align", "evaluate"):
        base, long_ = times[("default", stage)], times[("long", stage)]
        rows.append(
            [stage, f"{base:.1f} s", f"{long_:.1f} s", f"{long_ / base:.2f}", f"{share:.2f}"]
        )
    body = "\n".join(
        [
            f"## one {minutes:g}-minute held-out utterance: align and evaluate",
            "",
            f"{stamp()} The `{split}` split of the default run ({split_s / 60:.1f} min of "
            f"frames), and the same with one {frames * shards.HOP_S / 60:.1f}-minute utterance "
            f"added ({frames:,} frames: the split's utterances end to end). Each stage in a fresh "
            "process "
            "(benchmarks/long_evaluate.py); 'share' is the frames of the grown split over the "
            "default's, the time a stage linear in frames would take, as a ratio. Scored frames "
            f"in the grown run: {report['vqvae']['all']['frames']:,}.",
            "",
            table(
                [
                    "stage",
                    "default split",
                    f"+ one {minutes:g}-min utterance",
                    "ratio",
                    "share (linear)",
                ],
                rows,
            ),
        ]
    )
    if write:
        update_section("long_evaluate", body)
    print(body)


if __name__ == "__main__":
    typer.run(main)
