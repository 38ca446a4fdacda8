"""Stage logging: one format for every stage, and a timer that logs what a stage took."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from vqspeech.params import Params, ParamsError, load_params

T = TypeVar("T")


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
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
        handlers=[_BarAwareHandler()],
    )  # fmt: skip
    return logging.getLogger("vqspeech")


@contextlib.contextmanager
def timed(log: logging.Logger, what: str) -> Iterator[None]:
    start = time.perf_counter()
    log.info("%s: started", what)
    yield
    log.info("%s: done in %.1f s", what, time.perf_counter() - start)


def jobs(requested: int) -> int:
    """0 means every core this process may use."""
    return requested or len(os.sched_getaffinity(0))


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Any:
    """A tqdm bar (iterate it, or call .update()); refreshed at most every 10 s when stderr is
    not a terminal (CI, log files)."""
    from tqdm import tqdm

    kwargs.setdefault("mininterval", 0.1 if sys.stderr.isatty() else 10.0)
    return tqdm(iterable, **kwargs)


def load_params_or_exit(log: logging.Logger, path: str | os.PathLike[str]) -> Params:
    """Validated params; on a bad params file log why and exit 2."""
    try:
        return load_params(path)
    except ParamsError as err:
        log.error("%s", err)
        raise SystemExit(2) from None


@contextlib.contextmanager
def exit_on_error(log: logging.Logger) -> Iterator[None]:
    """Turn an expected failure (bad input, missing file, failed tool) into a logged exit 1."""
    try:
        yield
    except (ValueError, RuntimeError, OSError) as err:
        log.error("%s", err)
        raise SystemExit(1) from None
