"""The download stage as users run it: a subprocess reading params.yaml in its working folder."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
import yaml
from PIL import Image

from vqspeech.data import manifest
from vqspeech.evaluate import scoring
from vqspeech.evaluate.codes import read_intervals
from vqspeech.features import shards
from vqspeech.model.build import build
from vqspeech.model.checkpoint import load_model, save_model
from vqspeech.params import merged
from vqspeech.synthesis import page

from .conftest import (
    RAW,
    REPO,
    TINY_MODEL,
    TINY_TRAIN,
    Server,
    model_params,
    params_yaml,
    write_grid,
)

OUTPUTS = (
    "data/raw",
    "data/manifest.parquet",
    "data/download_report.json",
    "metrics/download.json",
)


def run_stage(
    cwd: Path, data: dict, stage: str = "download", **sections: dict
) -> subprocess.CompletedProcess[str]:
    (cwd / "params.yaml").write_text(params_yaml(data=data, **sections))
    script = REPO / "stages" / f"{stage}.py"
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def tiny_builtin() -> dict:
    return {
        "corpus": "builtin",
        "builtin": {
            "preset": "flite12",
            "voices": ["kal16"],
            "variants": [
                {"name": "base", "f0_scale": 1.0, "tempo": 1.0},
                {"name": "low", "f0_scale": 0.8, "tempo": 0.9},
            ],
            "utterances_per_speaker": 2,
        },
    }


def test_builtin_stage_writes_every_output(tmp_path: Path):
    proc = run_stage(tmp_path, tiny_builtin())
    assert proc.returncode == 0, proc.stderr
    table = manifest.read(tmp_path / "data/manifest.parquet")
    assert table.num_rows == 4
    for path in table.column("path").to_pylist() + table.column("textgrid").to_pylist():
        assert (tmp_path / path).is_file()
    metrics = json.loads((tmp_path / "metrics/download.json").read_text())
    assert metrics["utterances"] == 4 and metrics["speakers"] == 2 and metrics["skipped"] == 0
    assert "wrote data/manifest.parquet (4 utterances, 2 speakers" in proc.stderr
    assert "corpus builtin, " in proc.stderr and "download: done in" in proc.stderr
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".")]


# --- VCTK, served from 127.0.0.1 --------------------------------------------------------------

UTTS = {"p225": ["p225_001", "p225_002"], "p226": ["p226_001", "p226_002"]}


def vctk_zip() -> bytes:
    """A miniature VCTK 0.92 archive: 48 kHz FLAC for mic1 and mic2, transcripts, speaker info."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:

        def put(name: str, data: bytes | str) -> None:  # fixed timestamps: the same bytes each call
            zf.writestr(zipfile.ZipInfo(name, date_time=(2019, 11, 13, 0, 0, 0)), data)

        put("speaker-info.txt", "ID AGE GENDER ACCENTS\np225 23 F English\n")
        for spk, utts in UTTS.items():
            for utt in utts:
                put(f"txt/{spk}/{utt}.txt", f"Text of {utt}.\n")
                for mic in ("mic1", "mic2"):
                    audio = io.BytesIO()
                    sf.write(audio, [0.01] * 48000, 48000, format="FLAC")
                    put(f"wav48_silence_trimmed/{spk}/{utt}_{mic}.flac", audio.getvalue())
    return buf.getvalue()


def vctk_params(server: Server, payload: bytes, tmp_path: Path, on_error: str) -> dict:
    server.payload = payload
    return {
        "corpus": "vctk",
        "on_error": on_error,
        "aligner": "none",  # these test utterances without alignments (not speech to align)
        "vctk": {
            "url": server.url,
            "sha256": hashlib.sha256(payload).hexdigest(),
            "size": len(payload),
            "alignments": str(tmp_path / "mfa"),
            "archive_dir": str(tmp_path / "downloads"),
            "retries": 1,
        },
    }


@pytest.fixture
def alignments(tmp_path: Path) -> Path:
    mfa = tmp_path / "mfa"
    for spk, utts in UTTS.items():
        for utt in utts:
            if utt != "p226_002":  # MFA failed on this one
                write_grid(mfa / spk / f"{utt}.TextGrid", 1.0, ("sil", "HH", "AH", "sil"))
    return mfa


def test_vctk_stage_skips_and_reports_missing_alignment(
    http_server: Server, tmp_path: Path, alignments: Path
):
    proc = run_stage(tmp_path, vctk_params(http_server, vctk_zip(), tmp_path, "skip"))
    assert proc.returncode == 0, proc.stderr
    rows = pq.read_table(tmp_path / "data/manifest.parquet").to_pylist()
    assert [r["utterance_id"] for r in rows] == ["p225_001", "p225_002", "p226_001"]
    assert rows[0]["path"] == "data/raw/vctk/wav48_silence_trimmed/p225/p225_001_mic1.flac"
    assert rows[0]["textgrid"] == "data/raw/vctk/textgrids/p225/p225_001.TextGrid"
    assert rows[0]["sample_rate"] == 48000 and rows[0]["text"] == "Text of p225_001."
    assert not list((tmp_path / "data/raw/vctk").rglob("*_mic2.flac"))
    report = json.loads((tmp_path / "data/download_report.json").read_text())
    assert report["skipped"] == 1
    assert report["skipped_utterances"][0]["utterance_id"] == "p226_002"
    assert "no TextGrid found" in report["skipped_utterances"][0]["reason"]
    assert "skipped p226_002" in proc.stderr
    # the verified archive is kept outside the DVC outputs, so a rerun does not fetch it again
    assert (tmp_path / "downloads/corpus.zip").is_file()
    requests = len(http_server.requests)
    again = run_stage(tmp_path, vctk_params(http_server, vctk_zip(), tmp_path, "skip"))
    assert again.returncode == 0
    assert len(http_server.requests) == requests


def test_vctk_stage_fails_on_missing_alignment_leaving_no_output(
    http_server: Server, tmp_path: Path, alignments: Path
):
    proc = run_stage(tmp_path, vctk_params(http_server, vctk_zip(), tmp_path, "fail"))
    assert proc.returncode == 1
    assert "p226_002_mic1.flac: no TextGrid found" in proc.stderr
    for out in OUTPUTS:
        assert not (tmp_path / out).exists(), out
    assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".")]


def test_failure_keeps_the_previous_outputs_intact(
    http_server: Server, tmp_path: Path, alignments: Path
):
    assert run_stage(tmp_path, tiny_builtin()).returncode == 0
    before = (tmp_path / "data/manifest.parquet").read_bytes()
    proc = run_stage(tmp_path, vctk_params(http_server, vctk_zip(), tmp_path, "fail"))
    assert proc.returncode == 1
    assert (tmp_path / "data/manifest.parquet").read_bytes() == before
    assert (tmp_path / "data/raw/builtin").is_dir() and not (tmp_path / "data/raw/vctk").exists()


def test_vctk_path_traversal_archive_fails(http_server: Server, tmp_path: Path, alignments: Path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("wav48_silence_trimmed/p225/p225_001_mic1.flac", b"x")
        zf.writestr("../../outside_mic1.flac", b"x")
    proc = run_stage(tmp_path, vctk_params(http_server, buf.getvalue(), tmp_path, "fail"))
    assert proc.returncode == 1
    assert "member '../../outside_mic1.flac' escapes the target folder" in proc.stderr
    assert not list(tmp_path.parent.glob("outside*")) and not (tmp_path / "data/raw").exists()


def test_vctk_wrong_checksum_fails(http_server: Server, tmp_path: Path, alignments: Path):
    params = vctk_params(http_server, vctk_zip(), tmp_path, "fail")
    params["vctk"]["sha256"] = "0" * 64
    proc = run_stage(tmp_path, params)
    assert proc.returncode == 1
    assert "does not match the expected 0000" in proc.stderr
    assert not (tmp_path / "downloads/corpus.zip").exists()


def test_bad_params_exit_2_naming_the_key(tmp_path: Path):
    data = tiny_builtin()
    data["builtin"]["utterances"] = 3
    proc = run_stage(tmp_path, data)
    assert proc.returncode == 2
    assert "data.builtin.utterances: unknown key" in proc.stderr


# --- features and stats -------------------------------------------------------------------------

SPLIT = {"split": {"val_speakers": [], "test_speakers": ["kal16_low"]}}


def test_features_and_stats_stages(tmp_path: Path):
    assert run_stage(tmp_path, tiny_builtin()).returncode == 0
    proc = run_stage(tmp_path, tiny_builtin(), "features", features=SPLIT)
    assert proc.returncode == 0, proc.stderr
    assert "read data/manifest.parquet: 4 utterances, 2 speakers" in proc.stderr
    utts = list(shards.iter_utterances(tmp_path / "data/features"))
    assert sorted(u.utterance_id for u in utts) == [
        "kal16_0000",
        "kal16_0001",
        "kal16_low_0000",
        "kal16_low_0001",
    ]
    assert {u.speaker: u.split for u in utts} == {"kal16": "train", "kal16_low": "test"}
    report = json.loads((tmp_path / "data/features_report.json").read_text())
    assert report["dim"] == 39 and report["frames"] == sum(len(u.phones) for u in utts)

    proc = run_stage(tmp_path, tiny_builtin(), "stats", features=SPLIT)
    assert proc.returncode == 0, proc.stderr
    train = np.concatenate([u.features for u in utts if u.split == "train"]).astype(np.float64)
    stats = json.loads((tmp_path / "data/stats.json").read_text())
    assert stats["frames"] == len(train)
    np.testing.assert_allclose(stats["mean"], train.mean(axis=0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(stats["std"], train.std(axis=0), rtol=1e-6)
    dataset = json.loads((tmp_path / "reports/dataset.json").read_text())
    assert set(dataset["splits"]) == {"train", "test"}
    assert dataset["splits"]["test"]["speakers"] == 1
    headline = json.loads((tmp_path / "metrics/dataset.json").read_text())
    assert headline["total"] == dataset["total"] and "frames_per_phone" not in headline
    assert headline["splits"]["test"] == {
        k: dataset["splits"]["test"][k] for k in ("hours", "utterances", "speakers")
    }
    rows = json.loads((tmp_path / "plots/feature_stats.json").read_text())
    assert len(rows) == 39 and rows[0]["train_norm_mean"] == pytest.approx(0, abs=1e-4)
    assert rows[0]["train_norm_std"] == pytest.approx(1, abs=1e-4)
    phone_rows = json.loads((tmp_path / "plots/phone_frequency.json").read_text())
    assert sum(r["frames"] for r in phone_rows) == dataset["total"]["frames"]


def test_features_stage_bad_audio_fails_or_skips(tmp_path: Path):
    assert run_stage(tmp_path, tiny_builtin()).returncode == 0
    bad = tmp_path / "data/raw/builtin/wav/kal16/kal16_0001.wav"
    bad.write_bytes(b"RIFF" + bytes(40))
    proc = run_stage(tmp_path, tiny_builtin(), "features", features=SPLIT)
    assert proc.returncode == 1
    assert "kal16_0001.wav: unreadable audio" in proc.stderr
    assert "features.on_error: skip" in proc.stderr
    assert not (tmp_path / "data/features").exists()
    assert not (tmp_path / "data/features_report.json").exists()
    skip = {"split": SPLIT["split"], "on_error": "skip"}
    proc = run_stage(tmp_path, tiny_builtin(), "features", features=skip)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "data/features_report.json").read_text())
    assert report["utterances"] == 3
    assert [s["utterance_id"] for s in report["skipped_utterances"]] == ["kal16_0001"]


def test_features_stage_rejects_unknown_held_out_speaker(tmp_path: Path):
    assert run_stage(tmp_path, tiny_builtin()).returncode == 0
    split = {"split": {"test_speakers": ["p225"]}}
    proc = run_stage(tmp_path, tiny_builtin(), "features", features=split)
    assert proc.returncode == 1
    assert "held-out speakers not in the corpus: ['p225']" in proc.stderr


# --- train ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """download -> features -> stats on a tiny corpus, shared by the train tests (copy it)."""
    root = tmp_path_factory.mktemp("pipeline")
    split = {"split": {"val_speakers": ["kal16_high"], "test_speakers": ["kal16_low"]}}
    data = tiny_builtin()
    data["builtin"]["variants"].append({"name": "high", "f0_scale": 1.2, "tempo": 1.0})
    for stage in ("download", "features", "stats"):
        proc = run_stage(root, data, stage, features=split)
        assert proc.returncode == 0, proc.stderr
    return root


def train_params_in(src: Path, dst: Path, train: dict, model: dict | None = None) -> None:
    """A copy of the tiny pipeline at `dst` (once) with the tiny model and train params."""
    if not dst.exists():
        shutil.copytree(src, dst)
    params = yaml.safe_load((dst / "params.yaml").read_text())
    params["model"] = merged(RAW["model"], {**TINY_MODEL, **(model or {})})
    params["train"] = merged(RAW["train"], {**TINY_TRAIN, **train})
    (dst / "params.yaml").write_text(yaml.safe_dump(params))


def train_in(
    src: Path, dst: Path, train: dict, *launcher: str, model: dict | None = None
) -> subprocess.CompletedProcess[str]:
    train_params_in(src, dst, train, model)
    cmd = [*(launcher or [sys.executable]), str(REPO / "stages/train.py"), "run"]
    # a timeout turns a hang (a collective one rank never reaches) into a failure, not a stall
    return subprocess.run(cmd, cwd=dst, capture_output=True, text=True, check=False, timeout=300)


def test_train_stage_writes_model_metrics_and_curves_and_resumes(
    tiny_pipeline: Path, tmp_path: Path
):
    work = tmp_path / "w"
    proc = train_in(tiny_pipeline, work, {"epochs": 1})
    assert proc.returncode == 0, proc.stderr
    payload = torch.load(work / "models/model.pt", weights_only=True)
    config = payload["config"]
    assert config["model"]["quantizer"]["codebook_size"] == 8
    assert config["data"] == {"input_dim": 39, "n_speakers": 1}
    assert payload["speakers"] == ["kal16"]
    metrics = json.loads((work / "metrics/train.json").read_text())
    assert metrics["epoch"] == 1 and metrics["resumed_from_epoch"] is None
    assert {"train_loss", "val_recon", "val_perplexity", "audio_seconds_per_second"} <= set(metrics)
    loss_curve = work / "plots/train/plots/metrics/train/loss.tsv"
    steps_1 = len(loss_curve.read_text().splitlines())
    assert steps_1 > 1
    assert (work / "plots/train/plots/metrics/grad_norm/encoder.tsv").is_file()
    assert (work / "plots/train/plots/metrics/val/recon.tsv").is_file()
    snaps = pq.read_table(work / "models/snapshots.parquet")
    assert sorted(set(snaps.column("epoch").to_pylist())) == [0, 1]  # start and final epoch
    # more epochs: the run resumes from its checkpoint and the curves continue
    proc = train_in(tiny_pipeline, work, {"epochs": 2})
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"resuming from models/checkpoints/\w{16}/last\.pt: 1 epochs", proc.stderr)
    # the progress bar knows its total, starts at the resumed step and no log line runs into it
    per = metrics["steps"]
    assert f"| {per}/{2 * per} [" in proc.stderr and f"| {2 * per}/{2 * per} [" in proc.stderr
    logged = [line for line in proc.stderr.splitlines() if " INFO vqspeech" in line]
    assert logged and all(re.match(r"\d\d:\d\d:\d\d INFO vqspeech", line) for line in logged)
    assert json.loads((work / "metrics/train.json").read_text())["resumed_from_epoch"] == 1
    curve_2 = loss_curve.read_text().splitlines()
    assert len(curve_2) > steps_1
    # another configuration has a folder of its own: it starts afresh and overwrites nothing
    proc = train_in(tiny_pipeline, work, {"epochs": 1, "seed": 5})
    assert proc.returncode == 0, proc.stderr
    assert "resuming" not in proc.stderr
    assert json.loads((work / "metrics/train.json").read_text())["resumed_from_epoch"] is None
    assert len(list((work / "models/checkpoints").iterdir())) == 2
    # back to the first configuration: it resumes with its own curves, not the seed-5 run's
    proc = train_in(tiny_pipeline, work, {"epochs": 3})
    assert proc.returncode == 0, proc.stderr
    assert "restored this run's curves" in proc.stderr
    curve_3 = loss_curve.read_text().splitlines()
    assert curve_3[: len(curve_2)] == curve_2 and len(curve_3) > len(curve_2)


def test_train_stage_fewer_epochs_train_afresh_with_their_own_snapshots(
    tiny_pipeline: Path, tmp_path: Path
):
    """After a 3-epoch run, `train.epochs: 2` gives a 2-epoch model, not the 3-epoch one."""
    work = tmp_path / "w"
    assert train_in(tiny_pipeline, work, {"epochs": 3, "snapshot_every": 1}).returncode == 0
    long_steps = torch.load(work / "models/model.pt", weights_only=True)["steps"]
    proc = train_in(tiny_pipeline, work, {"epochs": 2, "snapshot_every": 1})
    assert proc.returncode == 0, proc.stderr
    assert "3 epochs done, more than train.epochs = 2" in proc.stderr
    metrics = json.loads((work / "metrics/train.json").read_text())
    assert metrics["epoch"] == 2 and metrics["resumed_from_epoch"] is None
    payload = torch.load(work / "models/model.pt", weights_only=True)
    assert payload["steps"] == metrics["steps"] == long_steps * 2 // 3
    snaps = pq.read_table(work / "models/snapshots.parquet").to_pandas()
    assert sorted(snaps["epoch"].unique()) == [0, 1, 2]
    final = np.stack(snaps[(snaps.epoch == 2) & (snaps.kind == "code")]["vector"].to_numpy())
    book = payload["state_dict"]["quantizer.codebook"].numpy()
    np.testing.assert_array_equal(final, book)  # the epoch-2 codebook is this model's
    # snapshot_every 0 (final only) with earlier snapshot files in the folder: still works
    proc = train_in(tiny_pipeline, work, {"epochs": 2, "snapshot_every": 0})
    assert proc.returncode == 0, proc.stderr
    snaps = pq.read_table(work / "models/snapshots.parquet").to_pandas()
    assert sorted(snaps["epoch"].unique()) == [2]
    assert train_in(tiny_pipeline, work, {"epochs": 2, "snapshot_every": 0}).returncode == 0


def test_train_stage_writes_the_model_last(tiny_pipeline: Path, tmp_path: Path):
    """A failure after training (here: metrics/train.json cannot be written) leaves no model."""
    work = tmp_path / "w"
    shutil.copytree(tiny_pipeline, work)
    (work / "metrics/train.json").mkdir(parents=True)  # a folder where the file should go
    proc = train_in(tiny_pipeline, work, {"epochs": 1})
    assert proc.returncode == 1
    assert not (work / "models/model.pt").exists()


def test_stages_name_a_bad_model_file_in_one_line(tiny_pipeline: Path, tmp_path: Path):
    work = tmp_path / "w"
    assert train_in(tiny_pipeline, work, {"epochs": 1}).returncode == 0
    model, _ = load_model(work / "models/model.pt")
    torch.save(model, work / "models/model.pt")  # a pickle of the whole module
    proc = run_stage_in(work, "align")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "models/model.pt: not a plain state-dict model file" in errors[0]
    assert "Traceback" not in proc.stderr and "weights_only=False" not in proc.stderr


def test_more_threads_than_cores_is_refused(tiny_pipeline: Path, tmp_path: Path):
    work = tmp_path / "w"
    proc = train_in(tiny_pipeline, work, {"epochs": 1, "threads": 64})
    assert proc.returncode == 1
    cores = len(os.sched_getaffinity(0))
    assert f"train.threads: 64 is more than the {cores} cores this process may use" in proc.stderr
    assert not (work / "models/model.pt").exists()


def test_a_model_for_other_features_is_named_in_one_line(tiny_pipeline: Path, tmp_path: Path):
    """A model trained on 80 log-mel bands, asked to encode the 39-dim MFCCs here."""
    work = tmp_path / "w"
    train_params_in(tiny_pipeline, work, {"epochs": 1})
    other = build(model_params(**TINY_MODEL), input_dim=80, n_speakers=2)
    save_model(work / "models/model.pt", other, {"speakers": ["kal16_base", "kal16_high"]})
    proc = run_stage_in(work, "align")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "ERROR" in line]
    assert (
        len(errors) == 1
        and (
            "models/model.pt: trained on 80-dimensional features, but the "
            "features to encode have 39 dimensions"
        )
        in errors[0]
    )
    assert "Traceback" not in proc.stderr


def test_align_stage_joins_codes_with_phones(tiny_pipeline: Path, tmp_path: Path):
    work = tmp_path / "w"
    assert train_in(tiny_pipeline, work, {"epochs": 1}).returncode == 0
    proc = run_stage_in(work, "align")
    assert proc.returncode == 0, proc.stderr
    test_utts = [u for u in shards.iter_utterances(work / "data/features") if u.split == "test"]
    table = pq.read_table(work / "data/codes/codes.parquet")
    assert table.num_rows == sum(len(u.phones) // 2 for u in test_utts)
    assert set(table.column("utterance_id").to_pylist()) == {u.utterance_id for u in test_utts}
    assert table.schema.field("latent").type.list_size == 8
    assert set(table.column("phone").to_pylist()) <= set(shards.LABELS)
    assert set(table.column("code").to_pylist()) <= set(range(8))
    phones = read_intervals(work / "data/codes")  # every interval, for ABX's items
    assert set(phones["utterance_id"]) == {u.utterance_id for u in test_utts}
    for u in test_utts:
        mine = phones[phones["utterance_id"] == u.utterance_id]
        assert (mine["start"].to_numpy()[1:] == mine["end"].to_numpy()[:-1]).all()
        assert mine["end"].max() >= (len(u.phones) - 1) * 0.01 + 0.025 - 0.01
    report = json.loads((work / "data/align_report.json").read_text())
    assert report["split"] == "test" and report["frames"] == table.num_rows
    assert report["frames_only_codes"] == 0 and report["frames_only_labels"] == 0
    proc = run_stage_in(work, "evaluate")
    assert proc.returncode == 0, proc.stderr
    result = json.loads((work / "reports/eval.json").read_text())
    raw = {"vqvae", "kmeans_mfcc", "kmeans_latent"}  # kmeans_latent: align kept train latents
    assert set(result) == {
        *raw,
        *(f"{s}_dpdp" for s in raw),
        "kmeans_mfcc_matched",
        "random",
        "mfcc",
    }
    # one test speaker: nothing for the speaker probe to tell apart, said in the log
    assert "speaker probe skipped: fewer than two held-out speakers" in proc.stderr
    assert not any("speaker_probe" in r for r in result.values())
    # at equal perplexity: the K' tried closest to the learned codes' perplexity on these frames
    matched, target = result["kmeans_mfcc_matched"], result["vqvae"]["all"]["code_perplexity"]
    tried = {int(c): p for c, p in matched["tried"].items()}
    assert 8 in tried  # it starts from K, the codebook size (8 here)
    assert matched["k"] == min(tried, key=lambda c: (abs(tried[c] - target), c))
    assert matched["all"]["code_perplexity"] == pytest.approx(tried[matched["k"]], abs=1e-3)
    assert (
        json.loads((work / "metrics/eval.json").read_text())["kmeans_mfcc_matched"]["k"]
        == (matched["k"])
    )
    for name in raw:  # DPDP trades quantization error for longer runs, never shorter ones
        dp = result[f"{name}_dpdp"]["all"]
        assert dp["mean_run_length"] >= result[name]["all"]["mean_run_length"]
        assert set(result[f"{name}_dpdp"]["abx"]) == {"code"}
    headline = json.loads((work / "metrics/eval.json").read_text())
    assert headline["vqvae"]["pnmi"] == result["vqvae"]["all"]["pnmi"]
    assert set(headline["vqvae"]) == {*scoring.HEADLINE, "abx"}
    assert set(headline["random"]) == {"pnmi", "nmi", "phone_purity"}
    assert set(headline["mfcc"]["abx"]) == {"frames_10ms", "frames_20ms"}
    assert set(headline["mfcc"]["abx"]["frames_10ms"]) == {"within", "across"}
    for name in (*raw, "random"):
        system = result[name]
        assert system["all"]["frames"] == table.num_rows
        assert {"nmi", "pnmi", "ari", "one_to_one", "boundary_f1"} <= set(system["all"])
        assert set(system["speech"]) >= {"nmi", "pnmi", "boundary_f1"}
    abx = result["vqvae"]["abx"]["latent"]
    assert abx["items"] > 0
    assert abx["across"] is None and abx["across_cells"] == 0  # one test speaker: no across
    # two utterances may hold no within cell: then null, never a made-up number
    assert (abx["within"] is None) == (abx["within_cells"] == 0)
    assert abx["within"] is None or 0 <= abx["within"] <= 100
    assert set(result["kmeans_mfcc"]["abx"]) == {"code"}
    # MFCC at 10 ms has items of its own: short phones that have no 20 ms frame are items there
    assert result["mfcc"]["abx"]["frames_10ms"]["items"] >= abx["items"]
    # ABX a context at a time (eval.abx.block_mb tiny) scores exactly as all items at once,
    # and its scratch folder beside the report is gone afterwards
    assert "ABX items in 1 blocks at 20 ms, 1 at 10 ms" in proc.stderr  # the default here
    params = yaml.safe_load((work / "params.yaml").read_text())
    params.setdefault("eval", {}).setdefault("abx", {})["block_mb"] = 1e-6
    (work / "blocks.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage_in(
        work,
        "evaluate",
        "--params",
        "blocks.yaml",
        "--report",
        "reports/blocks.json",
        "--metrics",
        "metrics/blocks.json",
    )
    assert proc.returncode == 0, proc.stderr
    blocks = re.search(r"ABX items in (\d+) blocks at 20 ms, (\d+) at 10 ms", proc.stderr)
    assert blocks and min(map(int, blocks.groups())) > 1
    assert json.loads((work / "reports/blocks.json").read_text()) == result
    assert not [p for p in (work / "reports").iterdir() if p.name.startswith(".")]


# the unit resynthesis of a stage test: a decoder of a few steps on the one or two utterances
SMALL_UNITS = {
    "systems": ["vqvae", "kmeans_mfcc", "kmeans_latent"],
    "train_utterances": 2,
    "scored_utterances": 2,
    "griffin_lim_iterations": 2,
    "mel_inverse": "pinv",  # NNLS takes seconds an utterance on the garbled spectra of 3 steps
    "decoder": {"channels": 8, "blocks": 1, "steps": 3, "crop_units": 8},
}


def test_wavenet_decoder_trains_aligns_evaluates_and_synthesizes(
    tiny_pipeline: Path, tmp_path: Path
):
    work = tmp_path / "w"
    shutil.copytree(tiny_pipeline, work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["features"]["split"] = {"val_speakers": [], "test_speakers": ["kal16_low"]}
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("features", "stats"):  # two train speakers, for the speaker classifier
        assert run_stage_in(work, stage).returncode == 0
    wavenet = {"residual_channels": 8, "skip_channels": 8, "layers_per_stack": 4}
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["model"] = merged(RAW["model"], {**TINY_MODEL, "decoder": "wavenet", "wavenet": wavenet})
    params["train"] = merged(RAW["train"], {**TINY_TRAIN, "epochs": 1, "crop_frames": 12})
    params["synthesize"] = merged(
        RAW["synthesize"],
        {"utterances": 2, "seconds": 0.2, "targets": 2},
    )
    params["synthesize"]["units"] = merged(  # one system here: test_dvc_repro runs all three
        params["synthesize"]["units"],
        SMALL_UNITS | {"systems": ["vqvae"], "wavenet": False},
    )
    params["eval"] = merged(
        RAW["eval"], {"plots": {"umap_points": 0}}
    )  # no UMAP: its compile is 12 s a process
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    proc = run_stage_in(work, "train", "run")
    assert proc.returncode == 0, proc.stderr
    assert "WaveNet decoder: 4 layers" in proc.stderr
    config = torch.load(work / "models/model.pt", weights_only=True)["config"]
    assert config["model"]["decoder"] == "wavenet"
    assert config["model"]["wavenet"]["layers_per_stack"] == 4
    for stage in ("align", "evaluate", "figures", "synthesize"):
        proc = run_stage_in(work, stage)
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-3000:]}"
        if stage == "figures":
            assert "eval.plots.umap_points is 0: no UMAP figure" in proc.stderr
    assert not (work / "plots/eval/umap.png").exists()
    assert (work / "plots/eval/heatmap.png").stat().st_size > 0
    assert json.loads((work / "reports/eval.json").read_text())["vqvae"]["all"]["frames"] > 0
    synth = json.loads((work / "metrics/synthesis.json").read_text())
    assert synth["decoder"] == "wavenet" and synth["seconds_each"] == 0.2
    assert synth["mcd_db"]["reconstruction"] > synth["mcd_db"]["mulaw_original"] > 0
    classifier = synth["speaker_classifier"]
    assert classifier["chance"] == 0.5 and 0 <= classifier["conversion_target_share"] <= 1
    assert synth["generation"]["sequences"] == 2 * (1 + 2)
    # the model's own WaveNet, scored whole as a unit system (test_synthesis), is off here: two
    # utterances sample by sample take minutes
    assert list(synth["units"]["systems"]) == ["original", "vocoder_ceiling", "vqvae"]
    wavs = sorted(p.name for p in (work / "data/synthesis").glob("*.wav"))  # WaveNet's
    assert len(wavs) == 2 * 4 and sum("_as_kal16" in w for w in wavs) == 4
    for wav in wavs:
        audio, sr = sf.read(work / "data/synthesis" / wav)
        assert sr == 16000 and len(audio) == 3200
    assert (work / "plots/synthesis/spectrograms.png").stat().st_size > 0


# every family without a decoder goes through the same stage code: one stage run for the newest
# (HuBERT); VQ-CPC's and CPC's training paths, units and logs are tested in test_vqcpc.py (one
# stage run each would not fit a suite near its time limit)
def test_a_family_without_a_decoder_trains_aligns_evaluates_and_plots_through_the_same_stages(
    tiny_pipeline: Path, tmp_path: Path
):
    work = tmp_path / "w"
    hubert = {"labels": 8, "context_dim": 8, "mask_span": 2}
    views = {"views": 1, "view_channel": "off"}  # warped renditions, made from the shards' audio
    proc = train_in(
        tiny_pipeline,
        work,
        {"epochs": 1, **views},
        model={"family": "hubert", "hubert": hubert},
    )
    assert proc.returncode == 0, proc.stderr
    assert "HuBERT: bidirectional LSTM context 8 per direction" in proc.stderr
    assert "train.views: the train split is held in memory" in proc.stderr
    assert "views: 1 of each of" in proc.stderr and "(channel off, warp +-0.15)" in proc.stderr
    payload = torch.load(work / "models/model.pt", weights_only=True)
    assert payload["config"]["model"]["family"] == "hubert"
    assert not any(k.startswith("decoder.") for k in payload["state_dict"])
    metrics = json.loads((work / "metrics/train.json").read_text())
    assert {"train_hubert", "val_hubert", "val_hubert_accuracy"} <= set(metrics)
    assert "val_perplexity" not in metrics  # no codes in training: its units come at the end
    # the label classes first, the units (k-means of the latents) when training ends
    labels, trained = proc.stderr.index("HuBERT labels: 8 classes"), proc.stderr.index("epoch 1/1")
    fitted = proc.stderr.index("codebook set by k-means")
    assert labels < trained < fitted and proc.stderr.count("codebook set by k-means") == 1
    assert (work / "plots/train/plots/metrics/val/hubert.tsv").is_file()
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["eval"]["plots"]["umap_points"] = 0  # UMAP's 12 s compile: the suite's time limit
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("align", "evaluate", "figures"):
        proc = run_stage_in(work, stage)
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-3000:]}"
    report = json.loads((work / "reports/eval.json").read_text())
    assert report["vqvae"]["all"]["frames"] > 0 and "kmeans_mfcc" in report
    matched = report["kmeans_mfcc_matched"]  # at the learned codes' perplexity
    target = report["vqvae"]["all"]["code_perplexity"]
    tried = {int(c): p for c, p in matched["tried"].items()}
    assert matched["k"] == min(tried, key=lambda c: (abs(tried[c] - target), c))
    assert matched["k"] >= 2 and "abx" in matched
    assert "eval.plots.umap_points is 0: no UMAP figure" in proc.stderr
    for figure in ("utterances.png", "heatmap.png"):
        assert (work / "plots/eval" / figure).read_bytes()[:4] == b"\x89PNG"


def test_logmel_target_trains_and_its_model_serves_the_later_stages(
    tiny_pipeline: Path, tmp_path: Path
):
    work = tmp_path / "w"
    proc = train_in(tiny_pipeline, work, {"epochs": 1}, model={"target": "logmel"})
    assert proc.returncode == 0, proc.stderr
    assert "decoder target: logmel (80 dims per 10 ms frame), not the 39-dim input" in proc.stderr
    assert "decoder target: 80-band log mel energies of" in proc.stderr
    payload = torch.load(work / "models/model.pt", weights_only=True)
    assert payload["config"]["data"] == {"input_dim": 39, "n_speakers": 1, "output_dim": 80}
    assert payload["state_dict"]["decoder.up.7.weight"].shape[0] == 80
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["eval"] = merged(RAW["eval"], {"plots": {"umap_points": 0, "utterances": 1}})
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("align", "figures"):
        proc = run_stage_in(work, stage)
        assert proc.returncode == 0, f"{stage}: {proc.stderr[-3000:]}"
    assert (work / "plots/eval/utterances.png").read_bytes()[:4] == b"\x89PNG"
    # without the shards' audio there is nothing to compute the targets from: a clear error
    for path in (work / "data/features").glob("*.parquet"):
        table = pq.read_table(path)
        empty = pa.array([[]] * table.num_rows, pa.list_(pa.int16()))
        i = table.schema.get_field_index("audio")
        pq.write_table(table.set_column(i, table.schema.field(i), empty), path)
    proc = train_in(tiny_pipeline, work, {"epochs": 1, "seed": 3}, model={"target": "logmel"})
    assert proc.returncode == 1
    assert "fewer audio samples than their frames cover" in proc.stderr


def run_stage_in(work: Path, stage: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(REPO / "stages" / f"{stage}.py"), *args]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=False, timeout=300)


def test_train_stage_bad_input(tiny_pipeline: Path, tmp_path: Path):
    proc = train_in(tiny_pipeline, tmp_path / "crop", {"crop_frames": 5000})
    assert proc.returncode == 1
    assert "crop of 5000 frames is longer than every utterance" in proc.stderr
    assert not (tmp_path / "crop/models/model.pt").exists()
    empty = tmp_path / "empty"
    shutil.copytree(tiny_pipeline, empty)
    for shard in (empty / "data/features").glob("*.parquet"):
        table = pq.read_table(shard)
        pq.write_table(table.filter(pa.compute.not_equal(table.column("split"), "train")), shard)
    proc = train_in(tiny_pipeline, empty, {})
    assert proc.returncode == 1
    assert "no 'train' utterances in the feature shards" in proc.stderr


@pytest.mark.parametrize(
    "model",
    [
        {"decoder": "deconv"},
        {
            "decoder": "wavenet",
            "wavenet": {"residual_channels": 8, "skip_channels": 8, "layers_per_stack": 4},
        },
        {
            "family": "vqcpc",
            "cpc": {
                "context_dim": 8,
                "prediction_steps": 2,
                "negatives": 3,
                "speakers_per_batch": 1,
            },
        },
    ],
    ids=["deconv", "wavenet", "vqcpc"],
)
def test_torchrun_ddp_two_cpu_ranks_keep_identical_codebooks(
    tiny_pipeline: Path, tmp_path: Path, model: dict
):
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    launcher = (torchrun, "--standalone", "--nproc_per_node=2")
    proc = train_in(
        tiny_pipeline, tmp_path / "ddp", {"epochs": 2, "threads": 1}, *launcher, model=model
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "codebooks identical across 2 ranks" in proc.stderr
    assert "device cpu x 2" in proc.stderr
    assert torch.load(tmp_path / "ddp/models/model.pt", weights_only=True)["steps"] > 0


def test_torchrun_multi_node_form_trains_what_one_node_trains(tiny_pipeline: Path, tmp_path: Path):
    """Two "nodes" of one CPU rank each, meeting at a c10d rendezvous endpoint (one torchrun
    per node, as on a cluster: README "GPU and several machines"), train the same model as one node
    of two ranks."""
    import socket

    torchrun = str(Path(sys.executable).with_name("torchrun"))
    train = {"epochs": 2, "threads": 1}
    one = train_in(
        tiny_pipeline, tmp_path / "one", train, torchrun, "--standalone", "--nproc_per_node=2"
    )
    assert one.returncode == 0, one.stderr[-3000:]
    work = tmp_path / "two"
    train_params_in(tiny_pipeline, work, train)
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = [
        torchrun,
        "--nnodes=2",
        "--nproc_per_node=1",
        "--rdzv_backend=c10d",
        f"--rdzv_endpoint=127.0.0.1:{port}",
        "--rdzv_id=vqspeech-test",
        str(REPO / "stages/train.py"),
        "run",
    ]
    nodes = [
        subprocess.Popen(node, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    logs = [p.communicate(timeout=300)[1] for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(log[-2000:] for log in logs)
    assert sum("codebooks identical across 2 ranks" in log for log in logs) >= 1
    assert sum("device cpu x 2" in log for log in logs) == 1  # rank 0 logs, on one node
    a = torch.load(tmp_path / "one/models/model.pt", weights_only=True)["state_dict"]
    b = torch.load(work / "models/model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_corpus_difficulty_scores_the_input_only_baselines(
    tiny_pipeline: Path, monkeypatch: pytest.MonkeyPatch
):
    """benchmarks/corpus.py's measure: k-means PNMI and MFCC-frame ABX of a split, no model."""
    from vqspeech.evaluate import difficulty

    monkeypatch.chdir(tiny_pipeline)  # the manifest names its TextGrids from here
    got = difficulty.measure(
        "data/features",
        "data/manifest.parquet",
        "data/stats.json",
        split="test",
        k=4,
        seed=0,
        max_group=10,
        max_x_across=5,
    )
    assert 0 < got["kmeans_mfcc_pnmi"] <= 1 and got["speakers"] == 1 and got["frames"] > 0
    for side in ("within", "across"):  # a few utterances: a score may have no cell (NaN)
        for rate in ("", "_20ms"):
            value = got[f"mfcc_abx_{side}{rate}"]
            assert math.isnan(value) or 0 <= value <= 100, (side, rate, value)
    assert math.isnan(got["mfcc_abx_across"])  # one speaker: nothing to compare across


def test_train_summary_command(tiny_pipeline: Path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "stages/train.py"), "summary"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "encoder receptive field: 24 frames = 255 ms" in proc.stdout
    assert "speakers" in proc.stdout and "total" in proc.stdout


# --- DVC ---------------------------------------------------------------------------------------


class DvcRepo:
    """A scratch git + DVC repository holding the project's pipeline files and a tiny corpus."""

    def __init__(self, root: Path) -> None:
        self.root, self.work = root, root / "repo"
        self.dvc = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
        env_path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
        self.env = {
            "PATH": env_path,
            "HOME": str(root),
            "DVC_NO_ANALYTICS": "1",
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@localhost",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@localhost",
        }

    def sh(self, *cmd: str, cwd: Path | None = None, timeout: int = 600) -> str:
        proc = subprocess.run(
            cmd,
            cwd=cwd or self.work,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}"
        return proc.stdout


# the tests of one `dvc repro` run share a worker of `pytest -n` (`--dist loadgroup`), and the
# fixture lives as long as that worker's session: its pipeline run is a minute, and a module
# scope would run it again after another module's test ran between two of them
DVC_REPO_GROUP = pytest.mark.xdist_group("dvc_repo")


@pytest.fixture(scope="session")
def dvc_repo(tmp_path_factory: pytest.TempPathFactory) -> DvcRepo:
    """`dvc repro` run once in a scratch clone of the pipeline files, with a tiny corpus."""
    repo = DvcRepo(tmp_path_factory.mktemp("dvc"))
    work = repo.work
    work.mkdir()
    for name in ("dvc.yaml", "stages", "tools", "src", ".dvc/config", ".dvc/plots/offline.html"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=shutil.ignore_patterns("__pycache__", "tmp"))
        else:
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, work / name)
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"]["builtin"].update({"preset": "flite12", "utterances_per_speaker": 1})
    raw["data"]["builtin"]["voices"] = ["kal16"]
    raw["features"]["split"] = {"val_speakers": ["kal16_high"], "test_speakers": ["kal16_low"]}
    raw["model"] = merged(raw["model"], TINY_MODEL)  # keep every key: params.yaml has them all
    raw["train"].update({**TINY_TRAIN, "epochs": 1})
    # no UMAP (12 s of numba compile in every figures run, here and in every experiment): only
    # the experiment test's codebook GIF runs UMAP; no stage test draws plots/eval/umap.png
    raw["eval"]["plots"].update({"umap_points": 0, "utterances": 1})
    raw["synthesize"].update({"utterances": 1, "targets": 1})
    raw["synthesize"]["units"] = merged(raw["synthesize"]["units"], SMALL_UNITS)
    (work / "params.yaml").write_text(yaml.safe_dump(raw))
    (work / ".gitignore").write_text("/dvc_plots/\n/plots/compare/\n")
    repo.sh("git", "init", "-q")
    repo.sh("git", "add", "-A")
    repo.sh("git", "commit", "-qm", "pipeline")  # dvclive needs a commit, as every clone has
    repo.sh(repo.dvc, "repro")
    repo.sh("git", "add", "-A")
    repo.sh("git", "commit", "-qm", "repro")
    return repo


STAGES = ("download", "features", "stats", "train", "align", "evaluate", "figures", "synthesize")


@DVC_REPO_GROUP
def test_dvc_repro_runs_the_pipeline(dvc_repo: DvcRepo, tmp_path: Path):
    work, sh, dvc = dvc_repo.work, dvc_repo.sh, dvc_repo.dvc
    metrics = json.loads((work / "metrics/download.json").read_text())
    assert metrics["utterances"] == 3 and metrics["speakers"] == 3
    lock = yaml.safe_load((work / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(STAGES)
    assert "up to date" in sh(dvc, "status")
    again = sh(dvc, "repro")
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in again
    shown = json.loads(sh(dvc, "metrics", "show", "--json"))
    assert any("metrics/dataset.json" in str(v) for v in shown.values())
    # each system's resynthesis scores are DVC metrics, so `dvc metrics diff` compares them
    flat = sh(dvc, "metrics", "show", "--md")
    assert "units.systems.vqvae.wer" in flat and "units.systems.kmeans_mfcc.mcd_db" in flat
    # the default (deconv) model has no audio to synthesize: originals only, metrics null
    synth = json.loads((work / "metrics/synthesis.json").read_text())
    assert synth["decoder"] == "deconv" and synth["mcd_db"]["reconstruction"] is None
    assert synth["mcd_db"]["mulaw_original"] > 0
    # every unit system resynthesized (reconstruction + a conversion to the one train speaker),
    # beside the original and the vocoder ceiling, each in its folder
    systems = ["original", "vocoder_ceiling", "vqvae", "kmeans_mfcc", "kmeans_latent"]
    folder = work / "data/synthesis"
    wavs = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.wav"))
    utt = "kal16_low_0000"
    (speaker,) = torch.load(work / "models/model.pt", weights_only=True)["speakers"]
    versions = ("reconstruction", f"as_{speaker}")
    assert wavs == sorted(
        [f"{utt}_original.wav", f"original/{utt}_original.wav"]
        + [f"vocoder_ceiling/{utt}_reconstruction.wav"]
        + [f"{s}/{utt}_{v}.wav" for s in systems[2:] for v in versions]
    )
    units = synth["units"]
    assert list(units["systems"]) == systems and units["scored_utterances"] == 1
    for name in systems:
        assert 0 <= units["systems"][name]["wer"] <= 3  # insertions can pass 1
        assert 0 <= units["systems"][name]["per"] <= 3
    ceiling = units["systems"]["vocoder_ceiling"]["mcd_db"]
    assert all(ceiling < units["systems"][s]["mcd_db"] for s in systems[2:])  # 3 steps of training
    assert units["systems"]["vqvae"]["decoder_steps"] == 3
    assert units["systems"]["vqvae"]["conversion_target_share"] is None  # one train speaker
    # the page links every file it plays or shows, and each exists
    page_dir = work / "plots/synthesis"
    text = (page_dir / "index.html").read_text()
    linked = page.links(text)
    assert {(page_dir / x).resolve() for x in linked} == {
        *((work / "data/synthesis" / w).resolve() for w in wavs if "/" in w),
        (page_dir / f"{utt}.png").resolve(),
    }
    assert all((page_dir / x).is_file() for x in linked)
    assert "<script" not in text and "http" not in text  # offline
    # a system that evaluate did not score is named, and nothing is written
    report = json.loads((work / "reports/eval.json").read_text())
    del report["kmeans_latent"]
    (tmp_path / "eval.json").write_text(json.dumps(report))
    out = [f"--{o}={tmp_path / o}" for o in ("wavs", "plots", "metrics")]
    proc = run_stage_in(work, "synthesize", f"--report={tmp_path / 'eval.json'}", *out)
    assert proc.returncode != 0
    assert "names kmeans_latent, which" in proc.stderr and "has not scored" in proc.stderr
    assert not any((tmp_path / o).exists() for o in ("wavs", "plots", "metrics"))
    sh(dvc, "plots", "show", "-o", str(tmp_path / "plots_html"))
    html = (tmp_path / "plots_html" / "index.html").read_text()
    for plot in (
        "phone_frequency",
        "features_before_normalization",
        "features_after_normalization",
        "code_frequency",
        "distances",
        "heatmap.png",
        "utterances.png",
    ):
        assert plot in html
    # the page renders offline: vega, vega-lite and vega-embed inlined, no remote script
    assert "<script src" not in html and "cdn.jsdelivr" not in html
    assert "/* vega 5." in html and "/* vega-lite 5." in html and "vegaEmbed(" in html


@DVC_REPO_GROUP
def test_experiment_queue_compare_and_remote(dvc_repo: DvcRepo):
    """A queued experiment runs, the compare command tabulates it beside the commit's run, and
    data and experiments go to a local DVC remote and a bare git remote and come back in a
    clone. (One experiment: each costs a whole pipeline run; several are the study's, tested
    through tools/study.sh in test_study.)"""
    work, sh, dvc = dvc_repo.work, dvc_repo.sh, dvc_repo.dvc
    sh(dvc, "exp", "run", "--queue", "-S", "train.seed=1")
    assert sh(dvc, "queue", "status").count("Queued") == 1
    sh(dvc, "exp", "run", "--run-all", "-j", "1", timeout=900)
    exps = sh(dvc, "exp", "list", "--name-only").split()
    assert len(exps) == 1
    proc = subprocess.run(
        [sys.executable, str(work / "tools/compare.py")],
        cwd=work,
        env=dvc_repo.env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    table = (work / "plots/compare/table.md").read_text()
    assert "| seeds |" in table and "| 2 |" in table  # the commit's seed 0 + the queued seed 1
    for name in ("metrics_vs_codebook_size.png", "seeds.png", "codebook.gif", "runs.csv"):
        assert (work / "plots/compare" / name).stat().st_size > 0
    # the GIF (the only UMAP this test draws): one frame per snapshot epoch of the workspace run
    epochs = pq.read_table(work / "models/snapshots.parquet").column("epoch").to_pylist()
    with Image.open(work / "plots/compare/codebook.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == len(set(epochs)) >= 2
    # sharing: a local folder DVC remote, a bare git repository as the git remote
    remote, origin = dvc_repo.root / "remote", dvc_repo.root / "origin.git"
    sh("git", "init", "-q", "--bare", str(origin))
    sh("git", "remote", "add", "origin", str(origin))
    sh(dvc, "remote", "add", "-d", "store", str(remote))
    sh("git", "commit", "-qam", "remote")
    sh("git", "push", "-q", "origin", "HEAD:main")
    sh(dvc, "push")
    exp = exps[0]
    sh(dvc, "exp", "push", "origin", exp)
    assert "refs/exps/" in sh("git", "ls-remote", str(origin))
    clone = dvc_repo.root / "clone"
    sh("git", "clone", "-q", "-b", "main", str(origin), str(clone), cwd=dvc_repo.root)
    sh(dvc, "pull", cwd=clone)
    assert (clone / "models/model.pt").read_bytes() == (work / "models/model.pt").read_bytes()
    assert "up to date" in sh(dvc, "status", cwd=clone)
    sh(dvc, "exp", "pull", "origin", exp, cwd=clone)
    assert exp in sh(dvc, "exp", "list", "--all-commits", "--name-only", cwd=clone)


@DVC_REPO_GROUP
def test_dvc_fewer_epochs_exp_apply_status_and_module_edits(dvc_repo: DvcRepo):
    """The issue's three checks under real DVC: editing a module a stage imports makes that
    stage stale; a shorter experiment after a longer run in the workspace trains its own epochs;
    `dvc exp apply` leaves the train stage's `dvc status` clean whatever the checkpoints folder
    holds (only train runs: the later stages add nothing to these checks)."""
    from vqspeech import imports

    work, sh, dvc = dvc_repo.work, dvc_repo.sh, dvc_repo.dvc
    # every module edit makes stale exactly the stages whose deps hold it (a folder dep holds
    # every module of its subpackage), and those include every stage that imports it
    stages = yaml.safe_load((work / "dvc.yaml").read_text())["stages"]
    root = work / "src/vqspeech"
    users: dict[str, set[str]] = {}
    for name in stages:
        for f in imports.closure(work / f"stages/{name}.py", root):
            users.setdefault(f.relative_to(root).as_posix(), set()).add(name)
    for module in ("data/textgrid.py", "features/shards.py", "train/loop.py", "phones.py"):
        path = root / module
        holders = {
            name
            for name, st in stages.items()
            if any(path.is_relative_to(work / d) for d in st["deps"])
        }
        assert users[module] <= holders, module
        text = path.read_text()
        path.write_text(text + "\n# edited\n")
        try:
            stale = set(json.loads(sh(dvc, "status", "--json")))
        finally:
            path.write_text(text)
        assert stale == holders, module
    assert "up to date" in sh(dvc, "status")
    sh(dvc, "exp", "run", "-S", "train.epochs=3", "train")  # a longer run's checkpoint
    sh(dvc, "exp", "run", "-n", "short", "-S", "train.epochs=2", "train")  # the stage at issue
    metrics = json.loads((work / "metrics/train.json").read_text())
    assert metrics["epoch"] == 2 and metrics["resumed_from_epoch"] is None
    assert torch.load(work / "models/model.pt", weights_only=True)["steps"] == metrics["steps"]
    shown = json.loads(sh(dvc, "exp", "show", "--json"))
    assert "short" in json.dumps(shown)
    sh(dvc, "exp", "run", "-S", "train.epochs=3", "train")  # the checkpoints change again
    sh("git", "checkout", "--", ".")
    sh(dvc, "exp", "apply", "short")
    assert "up to date" in sh(dvc, "status", "train")
    assert json.loads((work / "metrics/train.json").read_text())["epoch"] == 2


def test_every_stage_removes_the_temporaries_a_killed_run_left(tiny_pipeline: Path, tmp_path: Path):
    """Not only download and features: stats, train (its run folder too), align and evaluate
    clear `.{name}.XXXXXXXX.tmp` / `.{name}.old-<pid>` of their own outputs when they start."""
    work = tmp_path / "w"
    assert train_in(tiny_pipeline, work, {"epochs": 1}).returncode == 0
    (run,) = (work / "models/checkpoints").iterdir()
    planted = {
        "stats": [
            work / "data/.stats.json.a1b2c3d4.tmp",
            work / "plots/.feature_stats.json.zz_99abc.tmp",
        ],
        "train": [work / "models/.model.pt.q9w8e7r6.tmp", run / ".last.pt.k2j3h4g5.tmp"],
        "align": [work / "data/.codes.x1y2z3w4.tmp", work / "data/.codes.old-4242"],
        "evaluate": [work / "metrics/.eval.json.m1n2b3v4.tmp"],
    }
    for paths in planted.values():
        for p in paths:
            p.mkdir(parents=True) if ".codes." in p.name else p.write_text("half")
    keep = work / "data/.codes.notours"  # a name the pattern does not cover stays
    keep.write_text("x")
    for stage, paths in planted.items():
        proc = (
            train_in(tiny_pipeline, work, {"epochs": 1})
            if stage == "train"
            else run_stage_in(work, stage)
        )
        assert proc.returncode == 0, proc.stderr
        for p in paths:
            assert not p.exists(), p
            assert f"removed {p.relative_to(work)}, left by an interrupted run" in proc.stderr
    assert keep.exists()
