"""tools/study.sh queues every configuration of the study with every seed, each knob named."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import yaml

from vqspeech.params import Params

from .conftest import RAW

REPO = Path(__file__).resolve().parents[1]


def stub_dvc(tmp_path: Path) -> dict[str, str]:
    """An environment whose `dvc` records its arguments in tmp_path / "calls"."""
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "calls"}\n')
    fake.chmod(0o755)
    return {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}


def run_study(tmp_path: Path, *names: str, **env: str) -> list[list[str]]:
    """tools/study.sh with a stub `dvc` that records its calls; returns them."""
    env = {**stub_dvc(tmp_path), **env}
    subprocess.run(["bash", str(REPO / "tools/study.sh"), *names], env=env, check=True)
    return [line.split() for line in (tmp_path / "calls").read_text().splitlines()]


def test_study_queues_every_configuration_and_seed_with_valid_params(tmp_path: Path):
    calls = run_study(tmp_path)
    queued = [c for c in calls if c[:3] == ["exp", "run", "--queue"]]
    assert len(queued) == 27 * 3 and calls[-1] == ["queue", "status"]
    names = [c[c.index("-n") + 1] for c in queued]
    assert len(set(names)) == 81
    assert {"base-s0", "all-s2", "cpcunits-s1", "static-s2", "hubert-s1"} <= set(names)
    knobs = {
        "train.seed",
        "features.normalize",
        "model.latent_norm",
        "model.jitter",
        "model.decoder_kernel",
    }
    for call in queued:
        overrides = dict(a.split("=", 1) for a in call[call.index("-n") + 2 :] if a != "-S")
        assert set(overrides) >= knobs
        raw = copy.deepcopy(RAW)
        for key, value in overrides.items():  # every override is a valid value of its param
            *groups, leaf = key.split(".")
            node = raw
            for g in groups:
                node = node.setdefault(g, {})
            node[leaf] = yaml.safe_load(value)
        Params.model_validate(raw)
    cpc = next(c for c in queued if "cpc-s0" in c)
    assert "model.family=vqcpc" in cpc and "model.cpc.causal=false" in cpc  # the earlier runs'
    causal = next(c for c in queued if "causalcpc-s0" in c)
    assert "model.cpc.causal=true" in causal
    assert "model.target=logmel" in next(c for c in queued if "target-s1" in c)
    assert "features.kind=logmel" in next(c for c in queued if "logmel-s2" in c)
    assert "model.family=hubert" in next(c for c in queued if "hubert-s0" in c)
    longer = next(c for c in queued if "views4static45-s1" in c)
    assert {"train.views=4", "model.target=static", "train.epochs=45"} <= set(longer)
    published = next(c for c in queued if "vqcpcpub-s2" in c)
    assert {"model.encoder=frame", "model.cpc.distinct_utterances=true"} <= set(published)


def test_study_queues_only_the_named_configurations_and_seeds(tmp_path: Path):
    calls = run_study(tmp_path, "jitonly", "k1only", SEEDS="2")
    names = [c[c.index("-n") + 1] for c in calls if "--queue" in c]
    assert names == ["jitonly-s2", "k1only-s2"]


def test_an_unknown_configuration_is_an_error_naming_the_known_ones(tmp_path: Path):
    proc = subprocess.run(
        ["bash", str(REPO / "tools/study.sh"), "jitonly", "cpcc"],
        env=stub_dvc(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and "no configuration named 'cpcc'" in proc.stderr
    assert " causalcpc " in proc.stderr and not (tmp_path / "calls").exists()  # nothing queued
