from __future__ import annotations

import os

# Under `pytest -n N` (make test: one worker per core), each worker and the stages it starts
# compute on one thread: N workers with a thread per core each would oversubscribe the cores.
# Set before anything loads torch, numpy's BLAS or numba (each reads its variable once).
if "PYTEST_XDIST_WORKER" in os.environ:
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from vqspeech.data.textgrid import Interval, write_phones
from vqspeech.features.acoustic import FeatureConfig
from vqspeech.model.vqvae import VQVAE
from vqspeech.params import FeaturesParams, ModelParams, Params, changed, load_params

REPO = Path(__file__).resolve().parents[1]
DEFAULTS: Params = load_params(REPO / "params.yaml")  # params.yaml holds every value
RAW: dict = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))  # as written


# the model and training of the tests that run the train stage: seconds, not minutes
TINY_MODEL = {
    "channels": 16,
    "res_blocks": 1,
    "embedding_dim": 8,
    "speaker_dim": 4,
    "quantizer": {"codebook_size": 8, "kmeans_batches": 2},
}
TINY_TRAIN = {"epochs": 2, "batch_size": 4, "val_crops": 8, "log_every": 2}


def params_yaml(**sections: dict) -> str:
    """A params.yaml: the repository's, with the keys `sections` name changed (a nested mapping
    changes only its own keys): `params_yaml(data={"corpus": "folder", ...})`."""
    from vqspeech.params import merged

    return yaml.safe_dump(merged(RAW, sections))


def features(**kw: object) -> FeatureConfig:
    """The feature config of `features.*` = kw, the rest as params.yaml has it."""
    return FeatureConfig.from_params(changed(DEFAULTS.features, **kw))


def audio_options(tolerance_s: float = 0.1, **kw: object) -> tuple[FeaturesParams, float]:
    """What `extract.process` takes besides the row and the feature config: `features.*` = kw
    (the rest as params.yaml has it) and `data.duration_tolerance_s`."""
    return changed(DEFAULTS.features, **kw), tolerance_s


def model_params(**kw: object) -> ModelParams:
    """`model.*` = kw (nested sections as dicts of the keys to change), the rest as params.yaml
    has it."""
    return changed(DEFAULTS.model, **kw)


def vqvae(params: ModelParams | None = None, input_dim: int = 39, n_speakers: int = 1) -> VQVAE:
    return VQVAE(params or DEFAULTS.model, input_dim=input_dim, n_speakers=n_speakers)


def write_wav(path: Path, seconds: float, sr: int = 16000, fmt: str = "WAV") -> Path:
    """A quiet noise burst of the given length (deterministic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = round(seconds * sr)
    y = 0.1 * np.random.default_rng(n).standard_normal(n).astype(np.float32)
    sf.write(str(path), y, sr, format=fmt)
    return path


def write_grid(path: Path, duration: float, labels: tuple[str, ...] = ("sil", "AH", "sil")) -> Path:
    """A phones tier splitting [0, duration] evenly among `labels`."""
    edges = np.linspace(0.0, duration, len(labels) + 1)
    spans = zip(edges[:-1], edges[1:], labels, strict=True)
    intervals = [Interval(float(a), float(b), lab) for a, b, lab in spans]
    write_phones(path, intervals, duration)
    return path


@dataclass
class Server:
    """A local HTTP server for one payload, with switchable faults; records what it was asked."""

    payload: bytes = b""
    status_failures: list[int] = field(default_factory=list)  # answer these statuses first
    cut_after: int | None = None  # on the first full response, send only this many bytes
    honour_range: bool = True
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    requests: list[dict[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def http_server() -> Iterator[Server]:
    state = Server()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:
            state.requests.append(dict(self.headers))
            if state.status_failures:
                self.send_error(state.status_failures.pop(0))
                return
            start = 0
            rng = self.headers.get("Range")
            if rng and state.honour_range:
                start = int(rng.split("=")[1].split("-")[0])
                if start >= len(state.payload):
                    self.send_error(416)
                    return
                self.send_response(206)
                end = len(state.payload) - 1
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(state.payload)}")
            else:
                self.send_response(200)
            body = state.payload[start:]
            if state.send_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_after is not None:
                self.wfile.write(body[: state.cut_after])
                state.cut_after = None
                self.close_connection = True
                return
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client stopped reading: fine
                self.close_connection = True

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/corpus.zip"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
