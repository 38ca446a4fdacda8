"""The README's look-around commands and its library example run as written, from the
repository root; the two commands sit in its first 60 lines and it stays a first hour's read."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

MARK = "<!-- tested: tests/test_readme.py runs every line of the next block -->"
PYTHON_MARK = "<!-- tested: tests/test_readme.py runs the next block -->"
README = (REPO / "README.md").read_text(encoding="utf-8")


def readme_commands(readme: str) -> list[str]:
    """The lines of the fenced block right after MARK."""
    assert readme.count(MARK) == 1, "the README must mark exactly one tested block"
    block = re.search(re.escape(MARK) + r"\s*```(?:sh|bash)\n(.*?)```", readme, re.S)
    assert block, "no ```sh block after the tested-block mark"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_commands_are_found_after_the_mark():
    text = f"intro\n{MARK}\n```sh\npython a.py --help\n\ndvc metrics show\n```\n```sh\nno\n```"
    assert readme_commands(text) == ["python a.py --help", "dvc metrics show"]


def readme_python(readme: str) -> str:
    """The fenced python block right after PYTHON_MARK."""
    assert readme.count(PYTHON_MARK) == 1, "the README must mark exactly one tested python block"
    block = re.search(re.escape(PYTHON_MARK) + r"\s*```python\n(.*?)```", readme, re.S)
    assert block, "no ```python block after the tested-python mark"
    return block.group(1)


COMMANDS = readme_commands(README)


def test_the_two_commands_come_first_and_the_readme_stays_short():
    head = README.splitlines()[:60]
    assert any(line.startswith("make repro") for line in head), "make repro not in 60 lines"
    assert any(line.startswith("make test") for line in head), "make test not in 60 lines"
    assert len(README.encode()) <= 12 * 1024, f"README.md is {len(README.encode())} bytes"


def test_readme_python_example_runs():
    """The library example, as a user pastes it: its printed shape is the one it promises."""
    code = readme_python(README)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    promised = re.search(r"print\((.*)\)\s*# (.*?):", code)
    assert promised, "the example's print promises no output"
    assert proc.stdout.strip() == promised.group(2), proc.stdout


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
