"""Every stage chooses the OpenMP wait policy before torch, scikit-learn or numba can load
libgomp (which reads it once): passive where other processes keep the cores busy, spinning (the
default) on a quiet machine; a user's own setting wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vqspeech import cli

from .conftest import REPO

STAGES = sorted(p.stem for p in (REPO / "stages").glob("*.py"))
KEYS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", cli.OWN)
PROBE = """
import json, os, runpy, sys
runpy.run_path(sys.argv[1])  # the stage's module level, as `python stages/<stage>.py` runs it
heavy = sorted(m for m in ("torch", "sklearn", "numba", "librosa") if m in sys.modules)
from vqspeech import cli
print(json.dumps({"env": {k: os.environ.get(k) for k in sys.argv[2:]}, "heavy": heavy,
                  "said": cli.OPENMP}))
"""


def probe(stage: str, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / "stages" / f"{stage}.py"), *KEYS],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in KEYS}


def test_the_policy_follows_the_cores_in_use():
    assert cli.wait_policy(0.0) == {} and cli.wait_policy(cli.BUSY_CORES - 0.01) == {}
    assert cli.wait_policy(cli.BUSY_CORES) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert cli.wait_policy(1.7) == {"OMP_WAIT_POLICY": "PASSIVE"}


def test_busy_processes_are_seen():
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        assert cli.cores_in_use(0.3) >= 1.0  # two spinning processes on any number of cores
    finally:
        for p in busy:
            p.kill()
            p.wait()


@pytest.mark.parametrize("stage", STAGES)
def test_stage_chooses_before_any_openmp_library_loads(stage: str):
    """Beside two busy processes every stage waits passively, and no OpenMP library is loaded
    at its module level (they load inside the command, after the choice)."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        result = probe(stage, clean_env())
    finally:
        for p in busy:
            p.kill()
            p.wait()
    assert result["heavy"] == []
    assert result["env"] == {
        "OMP_WAIT_POLICY": "PASSIVE",
        "GOMP_SPINCOUNT": None,
        cli.OWN: "OMP_WAIT_POLICY",
    }
    assert "cores busy at the start: OpenMP threads wait passively" in result["said"]


def test_a_users_own_setting_wins():
    for setting in ({"OMP_WAIT_POLICY": "ACTIVE"}, {"GOMP_SPINCOUNT": "1234"}):
        result = probe("train", {**clean_env(), **setting})
        assert result["env"] == {**dict.fromkeys(KEYS), **setting}
        assert result["said"] == "OpenMP wait policy from the environment"


def test_a_stage_started_by_a_busy_time_stage_looks_again():
    """The passive policy a parent chose on a busy machine is not taken for the user's: a child
    stage measures the machine again (spinning where it is quiet, passive where the suite's
    other worker keeps a core busy), and the parent's marker goes with the setting."""
    parent = {**clean_env(), "OMP_WAIT_POLICY": "PASSIVE", cli.OWN: "OMP_WAIT_POLICY"}
    result = probe("train", parent)
    assert "cores busy at the start: OpenMP threads wait" in result["said"], result
    if result["said"].endswith("spinning"):
        assert result["env"] == dict.fromkeys(KEYS), result
    else:  # chosen afresh: marked as the project's own again
        assert result["env"] == {**dict.fromkeys(KEYS), **cli.PASSIVE, cli.OWN: "OMP_WAIT_POLICY"}
