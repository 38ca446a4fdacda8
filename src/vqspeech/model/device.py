"""Where a model runs: the one reading of `train.device` (train, align and synthesize use it)."""

from __future__ import annotations

import os

import torch


def pick(device: str = "auto") -> torch.device:
    """ "auto": CUDA when there is a GPU, else the CPU; "cuda": an error without one; "cpu"."""
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    return torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")


def set_threads(threads: int) -> None:
    """`train.threads`: torch's intra-op threads (0: torch's own choice, one per core). More than
    the cores this process may use is an error: oversubscribed OpenMP threads wait on each other
    (about 10x slower). The count changes the weights (the order of parallel sums), not only the
    speed, so it is never chosen from the machine's load."""
    if not threads:
        return
    cores = len(os.sched_getaffinity(0))
    if threads > cores:
        raise ValueError(
            f"train.threads: {threads} is more than the {cores} cores this process may use; "
            "set at most that, or 0 for all"
        )
    torch.set_num_threads(threads)
