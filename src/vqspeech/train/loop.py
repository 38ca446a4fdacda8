"""Training the VQ-VAE: crops in, checkpoints, dvclive curves and the final model out.

Runs on CUDA (bf16 autocast, pinned memory) when there is a GPU and on the CPU otherwise, in one
process or under torchrun (DDP; only rank 0 logs and writes). Checkpoints are written atomically
after every epoch and hold the model, optimizer, RNG states and position; a rerun with the same
configuration resumes from the last one and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from vqspeech import imports
from vqspeech.model.build import UnitModel, build
from vqspeech.model.checkpoint import save
from vqspeech.model.device import pick, set_threads
from vqspeech.model.hubert import Hubert
from vqspeech.model.quantizer import kmeans
from vqspeech.params import ModelParams, TrainParams
from vqspeech.train.checkpoints import CHECKPOINT, load_resumable, run_dir, run_key
from vqspeech.train.crops import SplitData, random_crops
from vqspeech.train.stream import CropBatch, InMemory, Plan, Source, gather, loader

log = logging.getLogger(__name__)


def code_fingerprint() -> str:
    """Hash of the training code (the import closure of this module in the package: model, data,
    loop; and of `vqspeech.train.targets`, the decoder targets): part of the run key, so that a
    checkpoint of other code is not resumed."""
    root = Path(__file__).resolve().parent.parent  # the package: src/vqspeech
    targets = Path(__file__).with_name("targets.py")  # not imported: it needs librosa
    files = set(imports.closure(__file__, root)) | set(imports.closure(targets, root))
    h = hashlib.sha256()
    for f in sorted(files):
        h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:16]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, unusable data); the message says what to do."""


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto", threads: int = 0) -> Dist:
    """Pick the device (`model.device.pick`) and torch's threads (`model.device.set_threads`);
    under torchrun (WORLD_SIZE > 1) join the process group."""
    set_threads(threads)
    cuda = pick(device).type == "cuda"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", local + 1))
        gpus = torch.cuda.device_count() if cuda else 0
        if cuda and per_node > gpus:  # every local rank decides alike: one backend for all
            if device == "cuda":
                raise TrainingError(
                    f"{per_node} ranks on this machine but {gpus} GPUs: lower "
                    "--nproc_per_node, or train.device: cpu"
                )
            log.warning(
                "%d ranks on this machine but %d GPUs: training on the CPU (gloo)", per_node, gpus
            )
            cuda = False
        if cuda:
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        dev = torch.device("cuda", local) if cuda else torch.device("cpu")
        return Dist(dist.get_rank(), dist.get_world_size(), dev)
    return Dist(0, 1, torch.device("cuda" if cuda else "cpu"))


def describe(
    model_cfg: ModelParams,
    cfg: TrainParams,
    train_data: Source,
    val_data: Source | None,
    speakers: list[str],
    d: Dist,
) -> str:
    """What a run reads and builds, for the train stage's log: the splits, the device, and the
    model's parameters per module with its receptive field."""
    from vqspeech.model.vqvae import summary

    windows = len(train_data.windows(cfg.seed, 0))
    shape = {
        "input_dim": train_data.input_dim,
        "n_speakers": len(speakers),
        "output_dim": train_data.output_dim,
    }
    return (
        f"{train_data.utterances} train utterances ({train_data.frames} frames, {len(speakers)} "
        f"speakers; {windows} window(s) of at most {cfg.buffer_mb:g} MiB per epoch), "
        f"{val_data.utterances if val_data else 'no'} val; device {d.device} x {d.world}\n"
        f"model:\n{summary(build(model_cfg, **shape))}"
    )


def _grad_norms(model: UnitModel) -> dict[str, float]:
    norms = {}
    for name, module in model.named_children():
        grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
        if grads:
            norms[name] = float(torch.linalg.vector_norm(torch.stack(grads)))
    return norms


def _first_crops(train: Source, cfg: TrainParams, count: int, d: Dist) -> torch.Tensor:
    """`count` seeded crops of the first epoch's first window (the whole split when it is one
    window; read anyway), on the device: what the codebook and HuBERT's labels are fitted on
    (the same on every rank)."""
    rng = np.random.default_rng([cfg.seed, 10**6])
    window = train.windows(cfg.seed, 0)[0]
    utt, start = random_crops(window, cfg.crop_frames, count, rng)
    x = gather(train.load(window), utt, start, cfg.crop_frames, audio=False).x
    return torch.from_numpy(x).to(d.device)


@torch.no_grad()
def _kmeans_init(model: UnitModel, train: Source, cfg: TrainParams, d: Dist) -> None:
    """Codebook <- k-means of the model's latents (the encoder's outputs; HuBERT's, its context's)
    on `model.quantizer.kmeans_batches` batches of `_first_crops`: a VQ model's first codebook,
    and the units of a model that `fits_units` (CPC, HuBERT) when its training ends."""
    x = _first_crops(train, cfg, model.quantizer.kmeans_batches * cfg.batch_size, d)
    latents = getattr(model, "latents", model.encoder)
    z = latents(x).reshape(-1, model.cfg.embedding_dim)
    g = torch.Generator().manual_seed(cfg.seed)
    centres = kmeans(z.float().cpu(), model.quantizer.codebook_size, generator=g).to(d.device)
    model.quantizer.set_codebook(centres)
    log.info("codebook set by k-means on %d train latents", len(z))


def _fit_labels(model: Hubert, train: Source, cfg: TrainParams, d: Dist) -> None:
    """HuBERT's label classes: k-means of the paired frames of the same crops as `_kmeans_init`."""
    x = _first_crops(train, cfg, model.quantizer.kmeans_batches * cfg.batch_size, d)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    try:
        n = model.fit_labels(x, generator=g)
    except ValueError as err:
        raise TrainingError(str(err)) from None
    log.info(
        "HuBERT labels: %d classes by k-means on %d train latents' frames",
        len(model.label_centres),
        n,
    )


def val_batches(val: Source, cfg: TrainParams) -> list[CropBatch]:
    """The fixed validation crops (at most `train.val_crops`, about one per crop of the split),
    read once, in batches."""
    rng = np.random.default_rng([cfg.seed, 2 * 10**6])
    spans = val.spans()
    n = min(cfg.val_crops, max(1, int(spans.lengths.sum()) // cfg.crop_frames))
    utt, start = random_crops(spans, cfg.crop_frames, n, rng)
    every = val.take(utt, start, cfg.crop_frames)

    def part(a: np.ndarray | None, i: int) -> np.ndarray | None:
        return None if a is None else a[i : i + cfg.batch_size]

    return [
        CropBatch(*(part(a, i) for a in (every.x, every.speakers, every.audio, every.targets)))
        for i in range(0, n, cfg.batch_size)
    ]


@torch.no_grad()
def validate(model: UnitModel, val: list[CropBatch], d: Dist, seed: int) -> dict[str, float]:
    """Losses, perplexity and codes used on the fixed crops of the held-out speakers
    (`val_batches`). What the model draws (VQ-CPC's negatives) comes from torch's RNG forked and
    seeded here: the same every epoch, and the training stream is left where it was."""
    devices = [d.device] if d.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return _validate(model, val, d)


def _validate(model: UnitModel, val: list[CropBatch], d: Dist) -> dict[str, float]:
    model.eval()
    totals: dict[str, float] = {}
    counts = torch.zeros(model.quantizer.codebook_size, device=d.device)
    n = 0
    for c in val:
        xt, audio, target = _tensors(c, d)
        with _autocast(d):
            out = model(xt, _to_device(c.speakers, d), audio)
        terms = model.losses(_objective_frames(xt, target, c, d), out)
        if out.vq is not None:
            terms["commitment"] = out.vq.commitment
            counts += torch.bincount(
                out.vq.codes.reshape(-1), minlength=model.quantizer.codebook_size
            )
        for k, v in terms.items():
            totals[k] = totals.get(k, 0.0) + float(v) * len(c.x)
        n += len(c.x)
    model.train()
    found = {k: v / n for k, v in totals.items()}
    if counts.sum() > 0:  # codes in training (not a model that fits its units at the end)
        usage = counts / counts.sum()
        found["perplexity"] = float(torch.exp(-(usage * torch.log(usage + 1e-10)).sum()))
        found["codes_used"] = int((counts > 0).sum())
    return found


def _tensors(
    c: CropBatch, d: Dist
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """The batch's features, samples (WaveNet decoder) and decoder targets on the device."""

    def opt(a: np.ndarray | None) -> torch.Tensor | None:
        return None if a is None else _to_device(a, d)

    return _to_device(c.x, d), opt(c.audio), opt(c.targets)


def _objective_frames(
    xt: torch.Tensor, target: torch.Tensor | None, c: CropBatch, d: Dist
) -> torch.Tensor:
    """What `losses` scores the model's output against: the decoder targets when they are not
    the input; else the original frames when the input is a view (`train.views`); else the
    input."""
    if target is not None:
        return target
    return xt if c.clean is None else _to_device(c.clean, d)


def _autocast(d: Dist) -> torch.autocast:
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=d.device.type == "cuda")


def _to_device(x: np.ndarray, d: Dist) -> torch.Tensor:
    t = torch.from_numpy(x)
    if d.device.type == "cuda":
        return t.pin_memory().to(d.device, non_blocking=True)
    return t


def adam(model: nn.Module, lr: float) -> torch.optim.Adam:
    """AMSGrad Adam, fused: one kernel over all parameters on CPU and CUDA (3x faster than the
    per-parameter loop at the reference size on CPU, where it was a third of a batch-2 step)."""
    return torch.optim.Adam(model.parameters(), lr=lr, amsgrad=True, fused=True)


def warmup_lr(step: int, lr: float, warmup_steps: int) -> float:
    """The learning rate of optimizer step `step` (0-based): rising linearly over the first
    `warmup_steps` steps to `lr` (the first at lr / warmup_steps), then `lr`; 0 = no warm-up.
    A function of the step alone, so a resumed run goes on where it stopped."""
    if warmup_steps <= 0:
        return lr
    return lr * min(1.0, (step + 1) / warmup_steps)


class Stepper:
    """One optimizer step of the loop: forward (bf16 autocast on CUDA), the objective plus the
    quantizer's loss, backward, Adam. It returns the step's values (`names`) as one tensor on
    the device, without waiting for it: the loop reads them back every `train.log_every` steps
    (one host sync per window, not several per step)."""

    def __init__(
        self, model: UnitModel, net: nn.Module, optimizer: torch.optim.Optimizer, d: Dist
    ) -> None:
        self.model, self.net, self.optimizer, self.d = model, net, optimizer, d
        self.names: list[str] = []

    def __call__(self, c: CropBatch) -> torch.Tensor:
        xt, audio, target = _tensors(c, self.d)
        with _autocast(self.d):
            out = self.net(xt, _to_device(c.speakers, self.d), audio)
            # the first is the objective
            terms = self.model.losses(_objective_frames(xt, target, c, self.d), out)
            loss = next(iter(terms.values()))
            if out.vq is not None:
                loss = loss + out.vq.loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        values = {"loss": loss, **terms}
        if out.vq is not None:
            values["commitment"] = out.vq.commitment
            values["perplexity"] = out.vq.perplexity
            values["codes_used"] = out.vq.codes_used
        self.names = list(values)
        return torch.stack(
            [torch.as_tensor(v, device=loss.device).detach().float() for v in values.values()]
        )


class _Values:
    """One epoch's step values: kept on the device a window of `train.log_every` steps, then
    read back at once (`flush`): a non-finite loss stops the run there (before the epoch's
    checkpoint, so the last one stays good), the rest goes to the epoch's sums and the last
    step's row to dvclive."""

    def __init__(
        self,
        stepper: Stepper,
        ckpt_path: Path,
        epoch: int,
        live: object | None,
        model: UnitModel,
        d: Dist,
    ) -> None:
        self.stepper, self.ckpt_path, self.epoch, self.live, self.model, self.d = (
            stepper,
            ckpt_path,
            epoch,
            live,
            model,
            d,
        )
        self.pending: list[torch.Tensor] = []
        self.sums: dict[str, float] = {}
        self.steps = 0
        self.started = time.perf_counter()

    def add(self, values: torch.Tensor) -> None:
        self.pending.append(values)

    def flush(self, step: int, log: bool) -> None:
        if not self.pending:
            return
        rows = torch.stack(self.pending).cpu().tolist()
        names = self.stepper.names
        first = step - len(rows) + 1
        bad = [i for i, row in enumerate(rows) if not math.isfinite(row[0])]
        others = False
        if self.d.world > 1:  # every rank stops together, or the others hang in a collective
            flag = torch.tensor([1.0 if bad else 0.0], device=self.d.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            others = bool(flag.item()) and not bad
        if bad or others:
            good = self.ckpt_path if self.ckpt_path.exists() else "none yet"
            what = (
                f"loss became {rows[bad[0]][0]} at step {first + bad[0]}"
                if bad
                else f"another rank's loss became non-finite by step {step}"
            )
            raise TrainingError(
                f"{what} (epoch {self.epoch + 1}); stopped. The last good checkpoint is "
                f"{good}; lower train.lr or check the features"
            )
        for row in rows:
            for k, v in zip(names, row, strict=True):
                if k != "codes_used":
                    self.sums[k] = self.sums.get(k, 0.0) + v
        self.steps += len(rows)
        self.pending.clear()
        if log and self.live is not None:
            live = self.live
            values = dict(zip(names, rows[-1], strict=True))
            live.step = step
            for k, v in values.items():
                if k != "codes_used":
                    live.log_metric(f"train/{k}", v)
            if "codes_used" in values:
                live.log_metric("train/codes_used", int(values["codes_used"]))
            for name, v in _grad_norms(self.model).items():  # the last step's gradients
                live.log_metric(f"grad_norm/{name}", v)
            live.log_metric("step_time_s", (time.perf_counter() - self.started) / len(rows))
            live.next_step()
        self.started = time.perf_counter()


@dataclass
class Result:
    model: UnitModel
    epochs: int
    steps: int
    seconds: float
    frames: int
    last: dict[str, float]
    resumed_from: int | None

    def metrics(self) -> dict[str, object]:
        """metrics/train.json: the last epoch's losses, and what the run took."""
        return {
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in self.last.items()},
            "steps": self.steps,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "train_seconds": round(self.seconds, 1),
            # None when this run trained nothing (it found a finished run to resume)
            "audio_seconds_per_second": (
                round(self.frames * 0.01 / self.seconds, 1) if self.frames else None
            ),
            "resumed_from_epoch": self.resumed_from,
        }


def train(
    model_cfg: ModelParams,
    cfg: TrainParams,
    train_data: SplitData | Source,
    val_data: SplitData | Source | None,
    *,
    checkpoint_dir: Path,
    data_fingerprint: str,
    live: object | None = None,
    on_step: Callable[[int, UnitModel], None] | None = None,
    d: Dist | None = None,
    on_epoch: Callable[[int, UnitModel], None] | None = None,
) -> Result:
    """Train (or resume) and return the model; `live` is a dvclive.Live on rank 0 or None.

    The splits are in memory (SplitData) or streamed from the shards (`stream.Streamed`); the
    batches are the same either way when the train split fits in `train.buffer_mb`.
    `on_step(step, model)` runs after every optimizer step (progress bars; tests that interrupt).
    `on_epoch(epoch, model)` runs on rank 0 at the start (epoch 0, a fresh run only) and after
    each epoch, just before its checkpoint is written (codebook snapshots, curves kept with the
    run: a resume then never finds them older than the checkpoint); it must leave the model as
    it found it.
    """
    d = d or setup(cfg.device)
    key = run_key(model_cfg, cfg, data_fingerprint, code_fingerprint())
    torch.manual_seed(cfg.seed)
    wavenet = model_cfg.decoder == "wavenet"
    try:
        source = _source(train_data, wavenet, "train")
        val_source = None if val_data is None else _source(val_data, wavenet, "val")
    except ValueError as err:
        raise TrainingError(f"model.decoder is 'wavenet': {err}") from None
    if (model_cfg.target == "logmel") != (source.output_dim is not None):
        raise TrainingError(
            f"model.target is {model_cfg.target!r} but the train split "
            f"{'has no' if source.output_dim is None else 'has'} decoder targets "
            "(vqspeech.train.targets adds them)"
        )
    if val_source is not None and (val_source.output_dim is None) != (source.output_dim is None):
        raise TrainingError("the train and val splits must both have decoder targets or neither")
    model = build(
        model_cfg,
        input_dim=source.input_dim,
        n_speakers=source.n_speakers,
        output_dim=source.output_dim,
    )
    model = model.to(d.device)
    if wavenet:
        try:
            model.wavenet_window(cfg.crop_frames // 2)
        except ValueError as err:
            raise TrainingError(f"model.decoder is 'wavenet': {err}") from None
    contrastive = model_cfg.family in ("vqcpc", "cpc")
    grouped = model_cfg.cpc.speakers_per_batch if contrastive else 0
    distinct = contrastive and model_cfg.cpc.distinct_utterances
    plan = Plan(cfg.crop_frames, cfg.batch_size, cfg.seed, grouped, distinct)
    try:  # what cannot be cut fails now, not epochs later
        plan.check(source, cfg.epochs)
    except ValueError as err:
        raise TrainingError(f"train split: {err}") from None
    val = None if val_source is None else val_batches(val_source, cfg)
    optimizer = adam(model, cfg.lr)
    start_epoch, step, resumed, last = 0, 0, None, {}
    folder = run_dir(checkpoint_dir, key)
    ckpt_path = folder / CHECKPOINT
    state = load_resumable(ckpt_path, key, cfg.epochs, world=d.world)
    if state is None and d.main and folder.exists():
        # nothing of this folder belongs to the run about to start (snapshots included)
        shutil.rmtree(folder)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        if d.device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"])
        start_epoch, step, resumed = int(state["epoch"]), int(state["step"]), int(state["epoch"])
        last = dict(state.get("last", {}))
        log.info("resuming from %s: %d epochs, %d steps done", ckpt_path, start_epoch, step)
    if d.world > 1:
        _same_start(d, key, start_epoch)
    fits_units = getattr(model, "fits_units", False)
    if state is None and model.quantizer.kmeans_init and not fits_units:
        _kmeans_init(model, source, cfg, d)
    if state is None and isinstance(model, Hubert):  # its targets, fixed for the whole run
        _fit_labels(model, source, cfg, d)
    if on_epoch is not None and d.main and state is None:
        on_epoch(0, model)
    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[d.device.index] if d.device.type == "cuda" else None,
            broadcast_buffers=False,
        )
    model.train()
    stepper = Stepper(model, net, optimizer, d)
    started, frames = time.perf_counter(), 0
    for epoch in range(start_epoch, cfg.epochs):
        window = _Values(stepper, ckpt_path, epoch, live if d.main else None, model, d)
        for c in loader(plan, source, epoch, d.rank, d.world, cfg.workers):
            if cfg.warmup_steps and step <= cfg.warmup_steps:
                for group in optimizer.param_groups:
                    group["lr"] = warmup_lr(step, cfg.lr, cfg.warmup_steps)
            window.add(stepper(c))
            step += 1
            frames += c.x.shape[0] * c.x.shape[1] * d.world
            if step % cfg.log_every == 0:
                window.flush(step, log=True)
            if on_step is not None:
                on_step(step, model)
        window.flush(step, log=False)
        sums, n_steps = window.sums, window.steps
        last = {f"train_{k}": v / max(1, n_steps) for k, v in sums.items()}
        if val is not None:
            last.update({f"val_{k}": v for k, v in validate(model, val, d, cfg.seed).items()})
        last["epoch"] = epoch + 1
        broken = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
        if broken:  # a finite last loss can still leave non-finite weights behind it
            good = ckpt_path if ckpt_path.exists() else "none yet"
            raise TrainingError(
                f"weights became non-finite in epoch {epoch + 1} ({broken[0]}, ...); stopped "
                f"before its checkpoint. The last good checkpoint is {good}; lower train.lr"
            )
        if d.world > 1:
            dist.barrier()
        if d.main:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k != "epoch")
            log.info("epoch %d/%d (step %d): %s", epoch + 1, cfg.epochs, step, shown)
            if live is not None:
                live.step = step
                for k, v in last.items():
                    if k.startswith("val_"):
                        live.log_metric(f"val/{k[4:]}", v)
                live.next_step()
            if on_epoch is not None:  # before the checkpoint: what it keeps is never older
                on_epoch(epoch + 1, model)
            save(
                ckpt_path,
                {
                    "key": key,
                    "epoch": epoch + 1,
                    "step": step,
                    "world": d.world,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "rng_cpu": torch.get_rng_state(),
                    "rng_cuda": torch.cuda.get_rng_state() if d.device.type == "cuda" else None,
                    "last": last,
                },
            )
    if fits_units:  # the units: k-means of the trained latents (the same on every rank)
        _kmeans_init(model, source, cfg, d)
    if d.world > 1:
        _check_same_codebook(model, d)
    return Result(model, cfg.epochs, step, time.perf_counter() - started, frames, last, resumed)


def _source(data: SplitData | Source, audio: bool, name: str) -> Source:
    """`data` as a Source; ValueError when the decoder needs audio (`audio`) it lacks."""
    if isinstance(data, SplitData):
        data = InMemory(data, audio=False)
        data.audio = audio and data.data.audio is not None
    if audio and not data.audio:
        raise ValueError(f"the {name} split was loaded without audio")
    return data


def _same_start(d: Dist, key: str, epoch: int) -> None:
    """Every rank must start the same run at the same epoch: the collectives of a fresh start
    (k-means broadcast) and of a resume differ, and so would the steps."""
    mine = torch.tensor(
        [float(int(key[:12], 16)), float(epoch)], dtype=torch.float64, device=d.device
    )
    gathered = [torch.zeros_like(mine) for _ in range(d.world)]
    dist.all_gather(gathered, mine)
    starts = [(int(g[0]), int(g[1])) for g in gathered]
    if len(set(starts)) > 1:
        raise TrainingError(
            f"the ranks do not start alike (run key prefix, epoch per rank: {starts}): every "
            "machine needs the same params, data and code, and resuming needs every rank to see "
            "rank 0's models/checkpoints (a shared filesystem; only rank 0 writes them)"
        )


def _check_same_codebook(model: UnitModel, d: Dist) -> None:
    """Every rank must end with the same codebook (EMA statistics are all-reduced)."""
    mine = model.quantizer.codebook.detach().double().sum().reshape(1)
    gathered = [torch.zeros_like(mine) for _ in range(d.world)]
    dist.all_gather(gathered, mine)
    values = [float(g) for g in gathered]
    if max(values) - min(values) > 1e-6 * max(1.0, abs(values[0])):
        raise TrainingError(f"codebooks differ across ranks: checksums {values}")
    log.info("codebooks identical across %d ranks (checksum %.6f)", d.world, values[0])
