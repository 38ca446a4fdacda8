"""dvc.yaml's deps cover what every stage runs: a change to any module of the package that a
stage script imports (directly, inside a function, or through another module) reruns it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from vqspeech import imports

from .conftest import REPO

STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def script(stage: dict) -> Path:
    match = re.match(r"python (stages/\w+\.py)", stage["cmd"])
    assert match, f"stage command does not run a stage script: {stage['cmd']}"
    return REPO / match.group(1)


def uncovered(files: list[Path], deps: list[str]) -> list[str]:
    roots = [(REPO / d).resolve() for d in deps]
    return [
        f.relative_to(REPO).as_posix()
        for f in files
        if not any(f == r or f.is_relative_to(r) for r in roots)
    ]


@pytest.mark.parametrize("name", sorted(STAGES))
def test_stage_deps_cover_its_import_closure(name: str):
    stage = STAGES[name]
    path = script(stage)
    assert path.relative_to(REPO).as_posix() in stage["deps"]
    closure = imports.closure(path)
    assert any(f.name == "params.py" for f in closure)  # the closure is really followed
    missing = uncovered(closure, stage["deps"])
    assert not missing, f"{name}: dvc.yaml deps miss modules the stage imports: {missing}"
    # and they are folder deps, no more than the closure needs: a subpackage is one folder
    declared = sorted(d for d in stage["deps"] if d.startswith("src/"))
    assert declared == imports.deps(path), f"{name}: regenerate with python -m vqspeech.imports"
    assert any((REPO / d).is_dir() for d in declared)


def test_closure_follows_imports_inside_functions_and_packages(tmp_path: Path):
    pkg = tmp_path / "vqspeech"
    (pkg / "sub").mkdir(parents=True)
    for rel, text in {
        "__init__.py": "",
        "a.py": "import json\nfrom vqspeech import b\n",
        "b.py": "def f():\n    from vqspeech.sub.c import g\n    return g\n",
        "sub/__init__.py": "",
        "sub/c.py": "from . import d\n",
        "sub/d.py": "",
        "unused.py": "",
    }.items():
        (pkg / rel).write_text(text)
    got = {p.relative_to(pkg).as_posix() for p in imports.closure(pkg / "a.py", root=pkg)}
    assert got == {"__init__.py", "a.py", "b.py", "sub/__init__.py", "sub/c.py", "sub/d.py"}


def test_uncovered_lists_what_no_dep_covers():
    files = [REPO / "src/vqspeech/model/vqvae.py", REPO / "src/vqspeech/params.py"]
    assert uncovered(files, ["src/vqspeech/model"]) == ["src/vqspeech/params.py"]
    assert uncovered(files, ["src/vqspeech/model", "src/vqspeech/params.py"]) == []
