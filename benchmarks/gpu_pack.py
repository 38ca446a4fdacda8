"""What a lent GPU machine needs to run benchmarks/gpu.sh, packed to travel (the device tool
carries at most 64 MiB with the working tree, and its image has no librosa, flite or dvc).

`pack` (here, after `dvc repro stats`): the train and val splits of data/features without the
audio column and with the frames as float16 (half the bytes; the GPU run measures speed, and
its metrics are not this machine's anyway: bf16, other kernels), data/stats.json, and the wheels
of the train stage's packages that image lacks (pydantic and what it needs, for its Python),
into `.gpu/` (git-ignored). `unpack` (there): data/features as the features stage writes them
(float32 again, `shards.write`) and data/stats.json, so the train stage and benchmarks/train.py
read them as here.
Usage: python benchmarks/gpu_pack.py pack [--python-version 3.12]; ... unpack
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from vqspeech.features import shards  # noqa: E402

PACK = REPO / ".gpu"
SPLITS = ("train", "val")  # what training reads
# the train stage's packages that the device image lacks (its README lists what it has), at
# the versions of requirements.lock
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection")
LIMIT_MB = 56  # of the 64 MiB that travel, the rest is the working tree

app = typer.Typer(add_completion=False)


@app.command()
def pack(python_version: str = "3.12") -> None:
    """Write .gpu/: the train and val frames as float16 shards, stats.json and the wheels."""
    if PACK.exists():
        shutil.rmtree(PACK)
    (PACK / "features").mkdir(parents=True)
    for i, path in enumerate(shards.files(REPO / "data/features")):
        table = shards.read(path, columns=shards.FRAME_COLUMNS)
        table = table.filter(pc.is_in(table.column("split"), pa.array(SPLITS)))
        if not table.num_rows:
            continue
        feats = table.column("features")
        half = pa.list_(pa.list_(pa.float16(), feats.type.value_type.list_size))
        table = table.set_column(
            table.schema.get_field_index("features"), "features", feats.cast(half)
        )
        pq.write_table(table, PACK / "features" / f"part-{i:05d}.parquet", compression="zstd")
    shutil.copy(REPO / "data/stats.json", PACK / "stats.json")
    lock = (REPO / "requirements.lock").read_text().splitlines()
    pins = [next(line.split()[0] for line in lock if line.startswith(f"{w}==")) for w in WHEELS]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux2014_x86_64",
            "-d",
            str(PACK / "wheels"),
            *pins,
        ],
        check=True,
    )
    size = sum(p.stat().st_size for p in PACK.rglob("*") if p.is_file()) / 2**20
    print(f"wrote {PACK} ({size:.1f} MiB; splits {', '.join(SPLITS)})")
    if size > LIMIT_MB:
        raise SystemExit(f"{PACK} is {size:.1f} MiB, over the {LIMIT_MB} MiB that can travel")


@app.command()
def unpack() -> None:
    """Write data/features (float32 shards, as the features stage does) and data/stats.json."""
    out = REPO / "data/features"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for path in sorted((PACK / "features").glob("*.parquet")):
        table = pq.read_table(path)
        dim = table.schema.field("features").type.value_type.list_size
        single = shards.schema(dim).field("features").type  # float32, as the features stage
        table = table.set_column(
            table.schema.get_field_index("features"),
            "features",
            table.column("features").cast(single),
        )
        utts = list(shards.utterances_of(table))
        shards.write(out / path.name, utts, dim)
    shutil.copy(PACK / "stats.json", REPO / "data/stats.json")
    print(f"wrote {out} ({len(shards.files(out))} shards) and data/stats.json")


if __name__ == "__main__":
    app()
