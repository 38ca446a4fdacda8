"""Dataset statistics, computed streaming, shard by shard.

`Moments` merges per-batch (count, mean, M2) with Chan et al.'s parallel update, so the mean and
standard deviation over any number of shards equal a one-shot computation without holding the
frames in memory. `DatasetSummary` gathers the counts for `metrics/dataset.json`. `Normalizer`
is the train-split standardization every later stage applies (`data/stats.json`).
"""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vqspeech.features.shards import Utterance
from vqspeech.phones import SILENCES


@dataclass
class Moments:
    """Running per-dimension count, mean and sum of squared deviations (float64)."""

    dim: int
    n: int = 0
    mean: np.ndarray = field(init=False)
    m2: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.mean = np.zeros(self.dim)
        self.m2 = np.zeros(self.dim)

    def update(self, x: np.ndarray) -> None:
        """Add a batch of rows x: [N, dim]."""
        if len(x) == 0:
            return
        x = x.astype(np.float64, copy=False)
        n_b = len(x)
        mean_b = x.mean(axis=0)
        m2_b = ((x - mean_b) ** 2).sum(axis=0)
        total = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / total)
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * n_b / total)
        self.n = total

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation (ddof=0)."""
        if self.n == 0:
            raise ValueError("no frames")
        return np.sqrt(self.m2 / self.n)


@dataclass
class DatasetSummary:
    """Counts per split for metrics/dataset.json; `add` one utterance at a time."""

    hop_s: float
    window: int
    utterances: Counter[str] = field(default_factory=Counter)
    frames: Counter[str] = field(default_factory=Counter)
    speakers: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    phone_frames: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    window_phones: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def add(self, utt: Utterance) -> None:
        s = utt.split
        self.utterances[s] += 1
        self.frames[s] += len(utt.phones)
        self.speakers[s].add(utt.speaker)
        self.phone_frames[s].update(utt.phones)
        for start in range(0, len(utt.phones) - self.window + 1, self.window):
            self.window_phones[s].append(len(set(utt.phones[start : start + self.window])))

    def as_dict(self) -> dict[str, object]:
        splits = sorted(self.utterances)
        all_phones: Counter[str] = sum(self.phone_frames.values(), Counter())
        per_split = {}
        for s in splits:
            frames = self.frames[s]
            silence = sum(self.phone_frames[s][p] for p in SILENCES)
            windows = self.window_phones[s]
            per_split[s] = {
                "hours": round(frames * self.hop_s / 3600, 4),
                "utterances": self.utterances[s],
                "speakers": len(self.speakers[s]),
                "frames": frames,
                "silence_share": round(silence / frames, 4),
                "distinct_phones_per_window": round(float(np.mean(windows)), 3)
                if windows
                else None,
            }
        total = sum(self.frames.values())
        windows = [w for s in splits for w in self.window_phones[s]]
        return {
            "splits": per_split,
            "total": {
                "hours": round(total * self.hop_s / 3600, 4),
                "utterances": sum(self.utterances.values()),
                "speakers": len(set().union(*self.speakers.values())),
                "frames": total,
                "silence_share": round(sum(all_phones[p] for p in SILENCES) / total, 4),
                "distinct_phones_per_window": round(float(np.mean(windows)), 3)
                if windows
                else None,
            },
            "window_frames": self.window,
            "phone_inventory": sorted(all_phones),
            "frames_per_phone": dict(sorted(all_phones.items())),
        }

    @staticmethod
    def headline(full: dict[str, object]) -> dict[str, object]:
        """metrics/dataset.json, what `dvc metrics show` puts beside the other runs: the totals,
        and hours, utterances and speakers per split (the rest, frames per phone included, is
        in reports/dataset.json)."""
        per_split = {
            s: {k: v[k] for k in ("hours", "utterances", "speakers")}
            for s, v in full["splits"].items()
        }  # type: ignore[union-attr]
        return {"splits": per_split, "total": full["total"]}

    def phone_rows(self) -> list[dict[str, object]]:
        """Rows for the phone frequency plot: one per (phone, split)."""
        return [
            {"phone": p, "split": s, "frames": n}
            for s in sorted(self.phone_frames)
            for p, n in sorted(self.phone_frames[s].items())
        ]


STD_FLOOR = 1e-5  # a constant dimension is divided by this, not by 0


NORM_BLOCK = 16_384  # rows standardized at a time


@dataclass(frozen=True)
class Normalizer:
    """Per-dimension standardization with train-split statistics: the one `(x - mean) / std`
    of the project; `data/stats.json` is read by `Normalizer.load` only."""

    mean: np.ndarray  # float64 [D]
    std: np.ndarray  # float64 [D], floored at STD_FLOOR
    frames: int = 0  # train frames the statistics come from

    @classmethod
    def from_moments(cls, train: Moments) -> Normalizer:
        return cls(train.mean, np.maximum(train.std, STD_FLOOR), train.n)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Normalizer:
        """Read `data/stats.json`; a missing or malformed file is a ValueError naming it."""
        try:
            stats = json.loads(Path(path).read_text(encoding="utf-8"))
            mean = np.asarray(stats["mean"], dtype=np.float64)
            std = np.asarray(stats["std"], dtype=np.float64)
        except FileNotFoundError:
            raise ValueError(f"{path}: no normalization statistics (run the stats stage)") from None
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{path}: not a stats file of the stats stage ({err!r})") from None
        if mean.ndim != 1 or mean.shape != std.shape or not (std > 0).all():
            raise ValueError(f"{path}: mean and std must be equal-length vectors, std > 0")
        return cls(mean, std, int(stats.get("frames", 0)))

    def to_json(self) -> str:
        stats = {
            "frames": self.frames,
            "dim": len(self.mean),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }
        return json.dumps(stats, indent=1, allow_nan=False) + "\n"  # NaN is no JSON

    def __call__(self, x: np.ndarray, dtype: type = np.float32) -> np.ndarray:
        """x: [..., D] -> standardized, as `dtype` (computed in float64, NORM_BLOCK rows at a
        time: the float64 temporaries stay in cache, 4x faster on a large array, same bits)."""
        if x.shape[-1] != len(self.mean):
            raise ValueError(f"features of {x.shape[-1]} dims, statistics of {len(self.mean)}")
        if x.ndim != 2 or len(x) <= NORM_BLOCK:
            return ((x - self.mean) / self.std).astype(dtype, copy=False)
        out = np.empty(x.shape, dtype=dtype)
        for i in range(0, len(x), NORM_BLOCK):
            out[i : i + NORM_BLOCK] = (x[i : i + NORM_BLOCK] - self.mean) / self.std
        return out


def feature_rows(moments: dict[str, Moments], norm: Normalizer) -> list[dict[str, float]]:
    """Per dimension: raw train mean/std, and each split's mean/std after train normalization
    (`plots/feature_stats.json`)."""
    rows = []
    for d in range(len(norm.mean)):
        mean, std = norm.mean[d], norm.std[d]
        row: dict[str, float] = {"dimension": d, "raw_mean": mean, "raw_std": std}
        for split, m in sorted(moments.items()):
            row[f"{split}_norm_mean"] = (m.mean[d] - mean) / std
            row[f"{split}_norm_std"] = m.std[d] / std
        rows.append({k: round(float(v), 5) if k != "dimension" else v for k, v in row.items()})
    return rows


def accumulate(utterances: Iterable[Utterance], summary: DatasetSummary) -> dict[str, Moments]:
    """Per split moments of the features, and every utterance added to `summary`."""
    moments: dict[str, Moments] = {}
    for utt in utterances:
        moments.setdefault(utt.split, Moments(utt.features.shape[1])).update(utt.features)
        summary.add(utt)
    return moments
