"""The trained model file, `models/model.pt`: a plain state dict and the config it was trained
with, loaded with `weights_only=True`; anything else is a one-line CheckpointError naming the file.

Layout (`FORMAT` 2): {"format": 2, "config": {"model": <params.model as a dict>, "data":
{"input_dim", "n_speakers"[, "output_dim" when model.target is not the input]}},
"state_dict": ..., plus what the trainer adds (speakers, train params, steps)}. Files of the
older flat-config layout are refused with a message to retrain.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from pydantic import ValidationError

from vqspeech.io import atomic
from vqspeech.model.build import UnitModel, build
from vqspeech.params import ModelParams

FORMAT = 2


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model it is loaded into; names the file and fields."""


def save_model(path: Path, model: UnitModel, extra: dict[str, object]) -> None:
    """The final model: plain state dict + config, loadable with weights_only=True."""
    weights = {k: v.detach().cpu() for k, v in model.state_dict().items()}  # whatever the device
    save(path, {"format": FORMAT, "config": model.config(), "state_dict": weights, **extra})


def save(path: Path, payload: dict) -> None:
    """`torch.save`, atomically."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic.write_bytes(path, buf.getvalue())


def load_model(
    path: str | os.PathLike[str],
    expect: ModelParams | None = None,
    input_dim: int | None = None,
) -> tuple[UnitModel, dict]:
    """Load `models/model.pt` (weights_only). With `expect`, other model params are an error;
    with `input_dim` (the features the model will read), a model trained on features of
    another dimension is.

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
    if payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: a model file of an older layout (format {payload.get('format', 1)}, its "
            f"model config flat; this version reads format {FORMAT}); retrain with the train "
            "stage (dvc repro train)"
        )
    config = payload["config"]
    if not isinstance(config, dict) or set(config) != {"model", "data"}:
        found = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(
            f"{path}: model config of another layout (expected 'model' and 'data', found "
            f"{found}); retrain with the train stage"
        )
    trained_on = config["data"].get("input_dim") if isinstance(config["data"], dict) else None
    if input_dim is not None and trained_on != input_dim:
        raise CheckpointError(
            f"{path}: trained on {trained_on}-dimensional features, but the features to encode "
            f"have {input_dim} dimensions (features.kind or n_mels changed since training); "
            "retrain with the train stage (dvc repro train)"
        )
    try:
        cfg = ModelParams.model_validate(config["model"])
        data = dict(config["data"])
        model = build(cfg, **data)
    except ValidationError as exc:
        why = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise CheckpointError(f"{path}: invalid model config: {why}") from None
    except (TypeError, ValueError, RuntimeError) as exc:  # e.g. input_dim: "39"
        raise CheckpointError(f"{path}: invalid model config: {exc}") from None
    if expect is not None and cfg != expect:
        diff = {
            k: (v, w)
            for (k, v), w in zip(_flat(cfg).items(), _flat(expect).values(), strict=True)
            if v != w
        }
        raise CheckpointError(f"{path}: written for other model params: {diff} (file, expected)")
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


def _flat(p: ModelParams) -> dict[str, object]:
    """model.quantizer.codebook_size -> "quantizer.codebook_size": value."""
    out: dict[str, object] = {}
    for k, v in p.model_dump().items():
        out.update({f"{k}.{kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
    return out
