"""Every stage script answers --help without its heavy imports, and every option has help text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import REPO

SCRIPTS = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "stages").glob("*.py"))
SCRIPTS.append("tools/compare.py")
HEAVY = ("torch", "librosa", "sklearn", "matplotlib", "umap", "scipy", "pandas", "pyarrow", "dvc")

PROBE = """
import importlib.util, json, sys
import typer.main
spec = importlib.util.spec_from_file_location("stage", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
command = typer.main.get_command(module.app)
commands = getattr(command, "commands", {None: command})
missing = [f"{name or ''} {p.name}" for name, c in commands.items() for p in c.params
           if not getattr(p, "help", None) and p.name != "help"]
print(json.dumps({"heavy": sorted(m for m in sys.argv[2:] if m in sys.modules),
                  "missing_help": missing, "commands": sorted(map(str, commands))}))
"""


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_needs_no_heavy_import_and_every_option_has_help(script: str):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(REPO / script), *HEAVY],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    probe = json.loads(proc.stdout)
    assert probe["heavy"] == [], f"{script} imports {probe['heavy']} at the top"
    assert probe["missing_help"] == [], f"{script}: options without help text"
    help_ = subprocess.run(
        [sys.executable, script, "--help"], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert "Usage:" in help_.stdout
    if probe["commands"] != ["None"]:  # train: run and summary
        assert all(name in help_.stdout for name in probe["commands"])
    else:
        assert ("--repo" if script == "tools/compare.py" else "--params") in help_.stdout
