"""The README's look-around commands run as written, from the repository root."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

MARK = "<!-- tested: tests/test_readme.py runs every line of the next block -->"


def readme_commands(readme: str) -> list[str]:
    """The lines of the fenced block right after MARK."""
    assert readme.count(MARK) == 1, "the README must mark exactly one tested block"
    block = re.search(re.escape(MARK) + r"\s*```(?:sh|bash)\n(.*?)```", readme, re.S)
    assert block, "no ```sh block after the tested-block mark"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_commands_are_found_after_the_mark():
    text = f"intro\n{MARK}\n```sh\npython a.py --help\n\ndvc metrics show\n```\n```sh\nno\n```"
    assert readme_commands(text) == ["python a.py --help", "dvc metrics show"]


COMMANDS = readme_commands((REPO / "README.md").read_text(encoding="utf-8"))


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_runs(command: str):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "-c", command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{command}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip(), f"{command} printed nothing"
