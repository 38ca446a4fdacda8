"""What every stage script shares: its typer app, logging, the `--params` option, the timed and
guarded body, progress bars.

A stage script is params, progress and I/O around a call into the library:

    app = cli.app(__doc__)

    @app.command()
    def main(
        params_file: cli.ParamsFile = cli.PARAMS,
        out: Annotated[Path, cli.opt("--out", "What to write.")] = Path("data/x"),
    ) -> None:
        with cli.stage("x", params_file, out) as params:
            ...

Heavy libraries (torch, librosa, sklearn) are imported inside the command, never at the top of a
stage script, so that `--help` answers in about a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

# OpenMP threads that finish their part of a parallel region spin for the others before they
# sleep (libgomp: 300,000 spins), so where other processes hold the cores every region waits out
# a descheduled sibling's time slice: a training step beside another experiment's evaluate ran
# 15x slower. Passive waiting (sleep at once) fixes that but costs a quiet machine 1.5-2x (every
# region then wakes its threads). So each stage looks before torch, scikit-learn or numba load
# libgomp (which reads its settings once): with other work on the machine its threads wait
# passively, on a quiet one they spin (docs/benchmarks.md "shared"). The wait policy changes no
# result, only speed; the thread count, which would, stays as it is. A user's own
# OMP_WAIT_POLICY or GOMP_SPINCOUNT wins.
BUSY_CORES = 0.5  # cores kept busy by others that make a stage wait passively
PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE"}
OWN = "VQSPEECH_OPENMP_CHOSEN"  # the variables the project, not the user, set


def cores_in_use(seconds: float = 0.1) -> float:
    """Of the cores this process may run on (its affinity), how many were kept busy (by any
    process) over the next `seconds`, from /proc/stat; 0 where it cannot be read."""
    mine = os.sched_getaffinity(0)

    def sample() -> dict[int, tuple[int, int]]:
        out = {}
        with open("/proc/stat", encoding="ascii") as f:
            for line in f:
                name, *fields = line.split()
                if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in mine:
                    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait .. steal
                    out[int(name[3:])] = (sum(ticks), ticks[3] + ticks[4])  # all, idle + iowait
        return out

    try:
        before = sample()
        time.sleep(seconds)
        after = sample()
    except (OSError, ValueError):
        return 0.0
    busy = 0.0
    for cpu, (total, idle) in after.items():
        spent = total - before.get(cpu, (total, idle))[0]
        if spent > 0:
            busy += (spent - (idle - before[cpu][1])) / spent
    return busy


def wait_policy(busy: float) -> dict[str, str]:
    """The OpenMP settings for a machine where others keep `busy` cores busy."""
    return dict(PASSIVE) if busy >= BUSY_CORES else {}


def _choose_wait_policy() -> str:
    # a stage started by another (pytest, a stage's subprocess) looks again: the parent's choice
    # is named by OWN, and only the user's own setting is inherited as such
    for key in filter(None, os.environ.pop(OWN, "").split(",")):
        os.environ.pop(key, None)
    if {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ):
        return "OpenMP wait policy from the environment"
    busy = cores_in_use()
    chosen = wait_policy(busy)
    os.environ.update(chosen)
    if chosen:
        os.environ[OWN] = ",".join(chosen)
    how = "passively" if busy >= BUSY_CORES else "spinning"
    return f"{busy:.1f} cores busy at the start: OpenMP threads wait {how}"


OPENMP = _choose_wait_policy()  # before typer, and before any stage imports torch

import typer  # noqa: E402

if TYPE_CHECKING:
    from vqspeech.params import Params

T = TypeVar("T")
log = logging.getLogger("vqspeech")

PARAMS = Path("params.yaml")
ParamsFile = Annotated[
    Path,
    typer.Option(
        "--params", help="Params file to read; validated, an unknown or mistyped key is an error."
    ),
]

# options that several stages read, with the pipeline's default paths
FEATURES, STATS = Path("data/features"), Path("data/stats.json")
MODEL, MANIFEST, CODES = Path("models/model.pt"), Path("data/manifest.parquet"), Path("data/codes")
FeaturesDir = Annotated[Path, typer.Option("--features", help="Feature shards to read.")]
StatsFile = Annotated[Path, typer.Option("--stats", help="Normalization statistics to read.")]
ModelFile = Annotated[Path, typer.Option("--model", help="Trained model to read.")]
ManifestFile = Annotated[Path, typer.Option("--manifest", help="Manifest of the corpus.")]
CodesDir = Annotated[Path, typer.Option("--codes", help="Codes of the align stage to read.")]


def opt(flag: str, help: str) -> Any:
    """An option `--flag` with its help text (the default goes in the signature)."""
    return typer.Option(flag, help=help)


class _BarAwareHandler(logging.Handler):
    """Writes each record through tqdm, which lifts a running progress bar off the line first:
    log lines never land in the middle of a bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


def setup(level: int = logging.INFO) -> logging.Logger:
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[_BarAwareHandler()],
    )
    return log


def app(doc: str | None) -> typer.Typer:
    """A stage's typer app, its help the first paragraph of the script's docstring; logging
    set up."""
    setup()
    first = " ".join((doc or "").split("\n\n")[0].split())
    return typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=first)


def run(application: typer.Typer) -> None:
    """`if __name__ == "__main__": cli.run(app)`."""
    sys.exit(application())


@contextlib.contextmanager
def stage(name: str, params_file: Path, *outputs: Path) -> Iterator[Params]:
    """The opening and closing every stage shares: the params validated (a bad file is logged
    and exits 2), stale temporaries of the stage's `outputs` removed, the body timed, and an
    expected failure in it (bad input, missing file, failed tool) logged and exited with 1."""
    from vqspeech.io import atomic

    params = load_params_or_exit(params_file)
    log.info("%s", OPENMP)
    with timed(name), exit_on_error():
        atomic.remove_stale(*outputs)
        yield params


@contextlib.contextmanager
def timed(what: str) -> Iterator[None]:
    start = time.perf_counter()
    log.info("%s: started", what)
    yield
    log.info("%s: done in %.1f s", what, time.perf_counter() - start)


def jobs(requested: int) -> int:
    """0 means every core this process may use."""
    return requested or len(os.sched_getaffinity(0))


def load_params_or_exit(path: str | os.PathLike[str]) -> Params:
    """Validated params; on a bad params file log why and exit 2."""
    from vqspeech.params import ParamsError, load_params

    try:
        return load_params(path)
    except ParamsError as err:
        log.error("%s", err)
        raise SystemExit(2) from None


@contextlib.contextmanager
def exit_on_error() -> Iterator[None]:
    """Turn an expected failure (bad input, missing file, failed tool) into a logged exit 1."""
    try:
        yield
    except (ValueError, RuntimeError, OSError) as err:
        log.error("%s", err)
        raise SystemExit(1) from None
