"""Feature export: manifest rows -> decoded, resampled, checked audio -> features + frame labels.

`process` handles one utterance (in a worker process); `export` runs them in parallel over the
manifest and writes Parquet shards of bounded size, so memory follows the shard size, not the
corpus size.
"""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import soundfile as sf
import soxr
import threadpoolctl

from vqspeech.data.pcm import to_int16, within_full_scale
from vqspeech.data.textgrid import (
    Interval,
    PhoneAlignment,
    TextGridError,
    fit_to_duration,
    read_phones,
)
from vqspeech.features import shards
from vqspeech.features.acoustic import FeatureConfig, extract, frame_labels, n_frames
from vqspeech.io.progress import progress
from vqspeech.io.skips import Skip
from vqspeech.params import FeaturesParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """What a worker needs of one manifest row."""

    utterance_id: str
    speaker: str
    split: str
    path: str
    textgrid: str
    sample_rate: int


def rows(manifest_table: pa.Table, split_of: dict[str, str]) -> list[Row]:
    """One Row per manifest row, with the speaker's split."""
    columns = ["utterance_id", "speaker", "path", "textgrid", "sample_rate"]
    return [
        Row(
            r["utterance_id"],
            r["speaker"],
            split_of[r["speaker"]],
            r["path"],
            r["textgrid"],
            r["sample_rate"],
        )
        for r in manifest_table.select(columns).to_pylist()
    ]


@dataclass(frozen=True)
class Done:
    utterance: shards.Utterance
    seconds: float
    downmixed: bool
    resampled: bool
    peak: float  # of the decoded samples: > 1 when beyond full scale, and then scaled down


def load_audio(
    row: Row, target_sr: int, allow_upsampling: bool
) -> tuple[np.ndarray, bool, bool, float]:
    """Decode, downmix and resample one file: (float32 mono at target_sr, downmixed, resampled,
    peak); samples beyond full scale are scaled down (`within_full_scale`), never clipped."""
    try:
        y, sr = sf.read(row.path, dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises RuntimeError/LibsndfileError for bad files
        raise ValueError(f"{row.path}: unreadable audio ({exc})") from exc
    if sr != row.sample_rate:
        raise ValueError(
            f"{row.path}: sample rate {sr} Hz, but the manifest says {row.sample_rate}"
        )
    if sr < target_sr and not allow_upsampling:
        raise ValueError(
            f"{row.path}: sample rate {sr} Hz is below {target_sr} Hz "
            "(set features.allow_upsampling: true to upsample)"
        )
    if not np.isfinite(y).all():
        bad = int(np.sum(~np.isfinite(y)))
        raise ValueError(f"{row.path}: {bad} NaN/inf samples")
    downmixed = y.shape[1] > 1
    mono = y.mean(axis=1) if downmixed else y[:, 0]
    resampled = sr != target_sr
    if resampled:
        mono = soxr.resample(mono, sr, target_sr, quality="HQ").astype(np.float32)
    mono, peak = within_full_scale(mono)  # after resampling, which can overshoot
    return mono, downmixed, resampled, peak


def trim(
    y: np.ndarray, sr: int, alignment: PhoneAlignment, margin_s: float
) -> tuple[np.ndarray, PhoneAlignment, float]:
    """Cut leading/trailing silence (per the alignment) down to `margin_s`; shift the alignment.

    Returns the cut signal, the shifted alignment and the start time of the cut in the original.
    """
    speech = [iv for iv in alignment.intervals if iv.label not in ("sil", "sp", "spn")]
    if not speech:
        return y, alignment, 0.0
    start = max(0.0, speech[0].start - margin_s)
    end = min(alignment.duration, speech[-1].end + margin_s)
    a, b = round(start * sr), round(end * sr)
    kept = [
        Interval(max(iv.start, start) - start, min(iv.end, end) - start, iv.label)
        for iv in alignment.intervals
        if iv.end > start and iv.start < end
    ]
    return y[a:b], PhoneAlignment(tuple(kept), (b - a) / sr), a / sr


def process(row: Row, cfg: FeatureConfig, f: FeaturesParams, tolerance_s: float) -> Done | Skip:
    """One utterance, end to end; bad input comes back as a Skip naming the file and problem."""
    try:
        y, downmixed, resampled, peak = load_audio(row, cfg.sample_rate, f.allow_upsampling)
        alignment = read_phones(row.textgrid)
        duration = len(y) / cfg.sample_rate
        if alignment.duration < duration - tolerance_s:
            raise TextGridError(
                f"{row.textgrid}: ends at {alignment.duration:.3f} s, before the audio's end at "
                f"{duration:.3f} s (tolerance {tolerance_s} s)"
            )
        alignment = PhoneAlignment(
            tuple(fit_to_duration(list(alignment.intervals), duration)), duration
        )
        start_s = 0.0
        if f.trim_silence:
            y, alignment, start_s = trim(y, cfg.sample_rate, alignment, f.trim_margin_s)
        if n_frames(len(y), cfg.win_length, cfg.hop_length) == 0:
            raise ValueError(
                f"{row.path}: {len(y) / cfg.sample_rate * 1000:.1f} ms of audio is shorter than "
                f"one {cfg.win_s * 1000:.0f} ms window"
            )
        pcm = to_int16(y)
        feats = extract(pcm.astype(np.float32) / 32768.0, cfg)
        if not np.isfinite(feats).all():
            frames = np.flatnonzero(~np.isfinite(feats).all(axis=1))
            raise ValueError(
                f"{row.path}: {len(frames)} feature frames are not finite (the "
                f"first at {frames[0] * cfg.hop_s:.2f} s)"
            )
        labels = frame_labels(alignment, len(feats), cfg.hop_s, cfg.win_s)
    except TextGridError as exc:
        return Skip(row.utterance_id, row.textgrid, str(exc))
    except ValueError as exc:
        message = str(exc) if row.path in str(exc) else f"{row.path}: {exc}"
        return Skip(row.utterance_id, row.path, message)
    utt = shards.Utterance(
        row.utterance_id,
        row.speaker,
        row.split,
        feats,
        labels,
        start_s,
        pcm if f.audio else None,
    )
    return Done(utt, len(y) / cfg.sample_rate, downmixed, resampled, peak)


_worker: tuple[FeatureConfig, FeaturesParams, float] | None = None


def _init_worker(cfg: FeatureConfig, f: FeaturesParams, tolerance_s: float) -> None:
    global _worker
    _worker = (cfg, f, tolerance_s)
    # One BLAS thread per worker: the per-frame matrices are small, and BLAS threads fighting the
    # other workers for the cores made the stage 3x slower (docs/benchmarks.md).
    threadpoolctl.threadpool_limits(1)


def _process_in_worker(row: Row) -> Done | Skip:
    assert _worker is not None, "worker not initialized"
    return process(row, *_worker)


@dataclass
class ExportReport:
    utterances: int = 0
    frames: int = 0
    seconds: float = 0.0
    downmixed: int = 0
    resampled: int = 0
    shards: int = 0
    skipped: list[Skip] | None = None
    rescaled: list[dict[str, object]] | None = None  # beyond full scale: utterance, path, peak

    def as_dict(self, cfg: FeatureConfig, f: FeaturesParams, split_of: dict[str, str]) -> dict:
        """data/features_report.json: the feature config, counts, the speaker -> split map and
        every skipped utterance with its reason."""
        return {
            "kind": cfg.kind,
            "normalize": cfg.normalize,
            "dim": cfg.dim,
            "sample_rate": cfg.sample_rate,
            "hop_s": cfg.hop_s,
            "win_s": cfg.win_s,
            "audio": f.audio,
            "utterances": self.utterances,
            "frames": self.frames,
            "hours": round(self.seconds / 3600, 4),
            "shards": self.shards,
            "downmixed": self.downmixed,
            "resampled": self.resampled,
            "rescaled": len(self.rescaled or []),
            "rescaled_utterances": self.rescaled or [],
            "speaker_split": split_of,
            "skipped": len(self.skipped or []),
            "skipped_utterances": [s.__dict__ for s in self.skipped or []],
        }


def export(
    rows: list[Row],
    out_dir: Path,
    cfg: FeatureConfig,
    f: FeaturesParams,
    tolerance_s: float,
    jobs: int,
) -> ExportReport:
    """Process every row in parallel and write shards `part-00000.parquet`, ... under `out_dir`.

    Results are consumed in manifest order as workers produce them, and a shard is written as soon
    as its features reach `features.shard_mb` megabytes, so memory follows the shard size. `f`:
    `params.features` as it is (trimming, upsampling, whether the shards keep the audio);
    `tolerance_s`: `data.duration_tolerance_s`.
    Bad utterances are returned in `report.skipped`; the caller decides whether that is fatal.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ExportReport(skipped=[], rescaled=[])
    pending: list[shards.Utterance] = []
    pending_bytes = 0
    limit = f.shard_mb * 2**20

    def flush() -> None:
        nonlocal pending, pending_bytes
        if pending:
            shards.write(out_dir / f"part-{report.shards:05d}.parquet", pending, cfg.dim)
            report.shards += 1
            pending, pending_bytes = [], 0

    # Warm up here (librosa's imports and first calls take seconds): forked workers inherit it.
    extract(np.zeros(cfg.win_length * 2, np.float32), cfg)
    context = multiprocessing.get_context("fork")
    with context.Pool(jobs, initializer=_init_worker, initargs=(cfg, f, tolerance_s)) as pool:
        bar = progress(total=len(rows), desc="features", unit="utt")
        for i, result in enumerate(pool.imap(_process_in_worker, rows, chunksize=8)):
            bar.update(1)
            if isinstance(result, Skip):
                report.skipped.append(result)
                continue
            pending.append(result.utterance)
            pending_bytes += result.utterance.features.nbytes
            if result.utterance.audio is not None:
                pending_bytes += result.utterance.audio.nbytes
            report.utterances += 1
            report.frames += len(result.utterance.features)
            report.seconds += result.seconds
            report.downmixed += result.downmixed
            report.resampled += result.resampled
            if result.peak > 1.0:
                report.rescaled.append(
                    {
                        "utterance_id": result.utterance.utterance_id,
                        "path": rows[i].path,
                        "peak": round(result.peak, 4),
                    }
                )
            if pending_bytes >= limit:
                flush()
        bar.close()
    flush()
    return report
