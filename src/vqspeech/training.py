"""Training the VQ-VAE: crops in, checkpoints, dvclive curves and the final model out.

Runs on CUDA (bf16 autocast, pinned memory) when there is a GPU and on the CPU otherwise, in one
process or under torchrun (DDP; only rank 0 logs and writes). Checkpoints are written atomically
after every epoch and hold the model, optimizer, RNG states and position; a rerun with the same
configuration resumes from the last one and ends with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from vqspeech import atomic, imports
from vqspeech.model.quantizer import kmeans
from vqspeech.model.vqvae import VQVAE, ModelConfig, decoder_loss
from vqspeech.trainset import SplitData, batch, batch_audio, crops, epoch_batches

log = logging.getLogger(__name__)
CHECKPOINT = "last.pt"


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss, unusable data); the message says what to do."""


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model it is loaded into; names the file and fields."""


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    epochs: int = 25
    batch_size: int = 32
    crop_frames: int = 48
    lr: float = 2e-4
    kmeans_init: bool = True
    kmeans_batches: int = 20
    val_crops: int = 1024
    device: str = "auto"
    log_every: int = 10


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup(device: str = "auto") -> Dist:
    """Pick the device; under torchrun (WORLD_SIZE > 1) join the process group."""
    cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device is 'cuda' but no CUDA device is available")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if cuda:
            torch.cuda.set_device(local)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        dev = torch.device("cuda", local) if cuda else torch.device("cpu")
        return Dist(dist.get_rank(), dist.get_world_size(), dev)
    return Dist(0, 1, torch.device("cuda") if cuda else torch.device("cpu"))


def code_fingerprint() -> str:
    """Hash of the training code (this module's import closure in the package: model, data,
    loop): a checkpoint of other code is not resumed."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in imports.closure(__file__, root):
        h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:16]


def run_key(model_cfg: ModelConfig, cfg: TrainConfig, data_fingerprint: str) -> str:
    """What a checkpoint must match to be resumed: model and train params (the number of epochs
    may grow, never shrink: see `_load_resumable`), the data, and the training code."""
    train = {k: v for k, v in asdict(cfg).items() if k not in ("epochs", "device", "log_every")}
    blob = json.dumps(
        [model_cfg.to_dict(), train, data_fingerprint, code_fingerprint()], sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_dir(checkpoint_root: Path, key: str) -> Path:
    """Where one run keeps its checkpoint and snapshots: `<root>/<run key>/`. A folder per
    configuration, so runs of other params never read or overwrite each other's files. The
    number of epochs is not part of the key: a shorter run of the same configuration replaces
    a longer one's folder (it cannot resume it), and the longer run then resumes from it."""
    return Path(checkpoint_root) / key


def save_model(path: Path, model: VQVAE, extra: dict[str, object]) -> None:
    """The final model: plain state dict + config, loadable with weights_only=True."""
    payload = {"config": model.cfg.to_dict(), "state_dict": model.state_dict(), **extra}
    _save(path, payload)


def load_model(
    path: str | os.PathLike[str], expect: ModelConfig | None = None
) -> tuple[VQVAE, dict]:
    """Load `models/model.pt` (weights_only). With `expect`, a different config is an error.

    Anything that is not a model file of this project (a pickle, a truncated file, a payload
    of another layout) is a one-line CheckpointError naming the file."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such model file (run the train stage)") from None
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        text = str(exc)
        if "Unsupported global" in text:
            # weights_only refuses arbitrary objects: loading them would run their code
            raise CheckpointError(
                f"{path}: not a plain state-dict model file (it holds pickled Python objects, "
                "which are not loaded); retrain with the train stage"
            ) from None
        # torch's own message spans many lines and suggests weights_only=False: keep the cause
        why = text.split("WeightsUnpickler error:")[-1].strip()
        why = why.splitlines()[0] if why else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable model file ({why})") from None
    if not isinstance(payload, dict) or not {"config", "state_dict"} <= payload.keys():
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(
            f"{path}: not a vqspeech model file: expected 'config' and 'state_dict', found {found}"
        )
    config = payload["config"]
    known = {f.name for f in fields(ModelConfig)}
    if not isinstance(config, dict) or not set(config) <= known:
        unknown = sorted(set(config) - known) if isinstance(config, dict) else config
        raise CheckpointError(
            f"{path}: model config of another layout (unknown fields {unknown}); retrain with "
            "the train stage"
        )
    try:
        cfg = ModelConfig(**config)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    if expect is not None and cfg != expect:
        diff = {
            k: (v, getattr(expect, k)) for k, v in cfg.to_dict().items() if getattr(expect, k) != v
        }
        raise CheckpointError(
            f"{path}: written for a different model config: {diff} (file, expected)"
        )
    try:
        model = VQVAE(cfg)
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. channels: "128"
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as exc:
        # torch's first line only says "Error(s) in loading state_dict": keep what follows too
        why = " ".join(line.strip() for line in str(exc).splitlines()[1:] if line.strip())
        why = why[:300] + (" ..." if len(why) > 300 else "")
        raise CheckpointError(
            f"{path}: weights do not fit the model config: {why or exc}"
        ) from None
    return model, payload


def _save(path: Path, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic.write_bytes(path, buf.getvalue())


def _grad_norms(model: VQVAE) -> dict[str, float]:
    norms = {}
    for name, module in model.named_children():
        grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
        if grads:
            norms[name] = float(torch.linalg.vector_norm(torch.stack(grads)))
    return norms


@torch.no_grad()
def _kmeans_init(model: VQVAE, train: SplitData, cfg: TrainConfig, d: Dist) -> None:
    """Codebook <- k-means of the encoder's outputs on the first batches (rank 0's, broadcast)."""
    rng = np.random.default_rng([cfg.seed, 10**6])
    utt, start = crops(train, cfg.crop_frames, cfg.kmeans_batches * cfg.batch_size, rng)
    x, _ = batch(train, utt, start, cfg.crop_frames)
    z = model.encoder(torch.from_numpy(x).to(d.device)).reshape(-1, model.cfg.embedding_dim)
    g = torch.Generator().manual_seed(cfg.seed)
    centres = kmeans(z.float().cpu(), model.cfg.codebook_size, generator=g).to(d.device)
    model.quantizer.set_codebook(centres)
    log.info("codebook initialised by k-means on %d latents", len(z))


@torch.no_grad()
def evaluate(model: VQVAE, val: SplitData, cfg: TrainConfig, d: Dist) -> dict[str, float]:
    """Losses, perplexity and codes used on fixed crops of the held-out speakers."""
    model.eval()
    rng = np.random.default_rng([cfg.seed, 2 * 10**6])
    n = min(cfg.val_crops, max(1, int(val.lengths.sum()) // cfg.crop_frames))
    utt, start = crops(val, cfg.crop_frames, n, rng)
    totals = {"recon": 0.0, "commitment": 0.0}
    counts = torch.zeros(model.cfg.codebook_size, device=d.device)
    for i in range(0, n, cfg.batch_size):
        u, s = utt[i : i + cfg.batch_size], start[i : i + cfg.batch_size]
        x, spk = batch(val, u, s, cfg.crop_frames)
        xt = torch.from_numpy(x).to(d.device)
        audio = _audio(model, val, u, s, cfg, d)
        with _autocast(d):
            out = model(xt, torch.from_numpy(spk).to(d.device), audio)
        totals["recon"] += float(decoder_loss(xt, out)) * len(x)
        totals["commitment"] += float(out.vq.commitment) * len(x)
        counts += torch.bincount(out.vq.codes.reshape(-1), minlength=model.cfg.codebook_size)
    usage = counts / counts.sum()
    model.train()
    return {
        "recon": totals["recon"] / n,
        "commitment": totals["commitment"] / n,
        "perplexity": float(torch.exp(-(usage * torch.log(usage + 1e-10)).sum())),
        "codes_used": int((counts > 0).sum()),
    }


def _audio(
    model: VQVAE, data: SplitData, utt: np.ndarray, start: np.ndarray, cfg: TrainConfig, d: Dist
) -> torch.Tensor | None:
    """The crops' int16 samples on the device when the decoder is a WaveNet, else None."""
    if model.cfg.decoder != "wavenet":
        return None
    return _to_device(batch_audio(data, utt, start, cfg.crop_frames), d)


def _autocast(d: Dist) -> torch.autocast:
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=d.device.type == "cuda")


def _to_device(x: np.ndarray, d: Dist) -> torch.Tensor:
    t = torch.from_numpy(x)
    if d.device.type == "cuda":
        return t.pin_memory().to(d.device, non_blocking=True)
    return t


@dataclass
class Result:
    model: VQVAE
    epochs: int
    steps: int
    seconds: float
    frames: int
    last: dict[str, float]
    resumed_from: int | None


def train(
    model_cfg: ModelConfig,
    cfg: TrainConfig,
    train_data: SplitData,
    val_data: SplitData | None,
    checkpoint_dir: Path,
    data_fingerprint: str,
    live: object | None = None,
    on_step: Callable[[int, VQVAE], None] | None = None,
    d: Dist | None = None,
    on_epoch: Callable[[int, VQVAE], None] | None = None,
) -> Result:
    """Train (or resume) and return the model; `live` is a dvclive.Live on rank 0 or None.

    `on_step(step, model)` runs after every optimizer step (progress bars; tests that interrupt).
    `on_epoch(epoch, model)` runs on rank 0 at the start (epoch 0, a fresh run only) and after
    each epoch, just before its checkpoint is written (codebook snapshots, curves kept with the
    run: a resume then never finds them older than the checkpoint); it must leave the model as
    it found it.
    """
    d = d or setup(cfg.device)
    key = run_key(model_cfg, cfg, data_fingerprint)
    torch.manual_seed(cfg.seed)
    model = VQVAE(model_cfg).to(d.device)
    if model_cfg.decoder == "wavenet":
        try:
            model.wavenet_window(cfg.crop_frames // 2)
            for name, data in (("train", train_data), ("val", val_data)):
                if data is not None and data.audio is None:
                    raise ValueError(f"the {name} split was loaded without audio")
        except ValueError as err:
            raise TrainingError(f"model.decoder is 'wavenet': {err}") from None
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, amsgrad=True)
    start_epoch, step, resumed, last = 0, 0, None, {}
    folder = run_dir(checkpoint_dir, key)
    ckpt_path = folder / CHECKPOINT
    state = _load_resumable(ckpt_path, key, cfg.epochs)
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
    elif cfg.kmeans_init:
        _kmeans_init(model, train_data, cfg, d)
    if on_epoch is not None and d.main and state is None:
        on_epoch(0, model)
    net: nn.Module = model
    if d.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[d.device.index] if d.device.type == "cuda" else None,
            broadcast_buffers=False,
        )  # fmt: skip
    model.train()
    started, frames = time.perf_counter(), 0
    for epoch in range(start_epoch, cfg.epochs):
        batches = epoch_batches(train_data, cfg.crop_frames, cfg.batch_size, cfg.seed, epoch)
        # every rank must take the same number of steps: each one is a collective (DDP, EMA)
        batches = batches[: len(batches) // d.world * d.world][d.rank :: d.world]
        sums = {"loss": 0.0, "recon": 0.0, "commitment": 0.0, "perplexity": 0.0}
        for utt, start in batches:
            t0 = time.perf_counter()
            x, spk = batch(train_data, utt, start, cfg.crop_frames)
            xt, st = _to_device(x, d), _to_device(spk, d)
            audio = _audio(model, train_data, utt, start, cfg, d)
            with _autocast(d):
                out = net(xt, st, audio)
                recon = decoder_loss(xt, out)
                loss = recon + out.vq.loss
            if not math.isfinite(float(loss.detach())):
                good = ckpt_path if ckpt_path.exists() else "none yet"
                value = float(loss.detach())
                raise TrainingError(
                    f"loss became {value} at step {step + 1} (epoch {epoch + 1}); stopped. "
                    f"The last good checkpoint is {good}; lower train.lr or check the features"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norms = _grad_norms(model)
            optimizer.step()
            step += 1
            frames += x.shape[0] * x.shape[1] * d.world
            values = {
                "loss": float(loss.detach()), "recon": float(recon.detach()),
                "commitment": float(out.vq.commitment.detach()),
                "perplexity": float(out.vq.perplexity),
            }  # fmt: skip
            for k, v in values.items():
                sums[k] += v
            if live is not None and step % cfg.log_every == 0:
                live.step = step
                for k, v in values.items():
                    live.log_metric(f"train/{k}", v)
                live.log_metric("train/codes_used", int(out.vq.codes_used))
                for name, v in norms.items():
                    live.log_metric(f"grad_norm/{name}", v)
                live.log_metric("lr", optimizer.param_groups[0]["lr"])
                live.log_metric("step_time_s", time.perf_counter() - t0)
                live.next_step()
            if on_step is not None:
                on_step(step, model)
        last = {f"train_{k}": v / max(1, len(batches)) for k, v in sums.items()}
        if val_data is not None:
            last.update({f"val_{k}": v for k, v in evaluate(model, val_data, cfg, d).items()})
        last["epoch"] = epoch + 1
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
            _save(ckpt_path, {
                "key": key, "epoch": epoch + 1, "step": step, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state() if d.device.type == "cuda" else None,
                "last": last,
            })  # fmt: skip
    if d.world > 1:
        _check_same_codebook(model, d)
    return Result(model, cfg.epochs, step, time.perf_counter() - started, frames, last, resumed)


def resume_step(checkpoint_dir: Path, key: str, epochs: int) -> int | None:
    """The step a run with this key and number of epochs would resume from, or None when it
    would start afresh."""
    state = _load_resumable(run_dir(checkpoint_dir, key) / CHECKPOINT, key, epochs, quiet=True)
    return None if state is None else int(state["step"])


def _load_resumable(path: Path, key: str, epochs: int, quiet: bool = False) -> dict | None:
    """The checkpoint's state when this run can continue it; otherwise None (and why).

    A checkpoint of the same configuration with more epochs done than `epochs` is no start for
    this run: resuming it would return the longer run's model under the shorter run's params."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        if not quiet:
            log.warning("%s is unreadable (%s); starting from scratch", path, exc)
        return None
    if not isinstance(state, dict) or state.get("key") != key:
        if not quiet:
            why = "other params, data or training code"
            log.warning("%s was written by %s; starting from scratch", path, why)
        return None
    done = int(state["epoch"])
    if done > epochs:
        if not quiet:
            log.warning(
                "%s has %d epochs done, more than train.epochs = %d: a shorter run cannot "
                "resume a longer one; starting from scratch", path, done, epochs,
            )  # fmt: skip
        return None
    return state


def _check_same_codebook(model: VQVAE, d: Dist) -> None:
    """Every rank must end with the same codebook (EMA statistics are all-reduced)."""
    mine = model.quantizer.codebook.detach().double().sum().reshape(1)
    gathered = [torch.zeros_like(mine) for _ in range(d.world)]
    dist.all_gather(gathered, mine)
    values = [float(g) for g in gathered]
    if max(values) - min(values) > 1e-6 * max(1.0, abs(values[0])):
        raise TrainingError(f"codebooks differ across ranks: checksums {values}")
    log.info("codebooks identical across %d ranks (checksum %.6f)", d.world, values[0])
