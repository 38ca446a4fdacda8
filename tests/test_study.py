"""tools/study.sh queues every configuration of the study with every seed, each knob named."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from vqspeech.params import Params

REPO = Path(__file__).resolve().parents[1]


def test_study_queues_every_configuration_and_seed_with_valid_params(tmp_path: Path):
    log = tmp_path / "calls"
    fake = tmp_path / "bin" / "dvc"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    subprocess.run(["bash", str(REPO / "tools/study.sh")], env=env, check=True)
    calls = [line.split() for line in log.read_text().splitlines()]
    queued = [c for c in calls if c[:3] == ["exp", "run", "--queue"]]
    assert len(queued) == 7 * 3 and calls[-1] == ["queue", "status"]
    names = [c[c.index("-n") + 1] for c in queued]
    assert len(set(names)) == 21 and {"base-s0", "all-s2", "jit-s1"} <= set(names)
    for call in queued:
        overrides = dict(a.split("=", 1) for a in call[call.index("-n") + 2 :] if a != "-S")
        assert set(overrides) == {"train.seed", "features.normalize", "model.latent_norm",
                                  "model.jitter", "model.decoder_kernel"}  # fmt: skip
        Params.model_validate({  # every override is a valid value of its param
            "data": {"corpus": "builtin"},
            "features": {"normalize": overrides["features.normalize"]},
            "model": {"latent_norm": overrides["model.latent_norm"],
                      "jitter": float(overrides["model.jitter"]),
                      "decoder_kernel": int(overrides["model.decoder_kernel"])},
        })  # fmt: skip
