"""The package's layering: no import cycle inside it, and the library never imports the CLI
(`vqspeech.cli` is the stage scripts' shell: its import probes the machine and sets OpenMP's
policy, which a library caller must not get as a side effect)."""

from __future__ import annotations

import graphlib
from pathlib import Path

from vqspeech import imports

from .conftest import REPO


def cycle(graph: dict[Path, set[Path]]) -> list[Path]:
    """One import cycle of `graph` (first module repeated at the end), or []."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        return list(err.args[1])
    return []


def names(paths: list[Path], root: Path = imports.ROOT) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_no_import_cycle_inside_the_package():
    """Imports inside functions count: they run when the function does."""
    assert names(cycle(imports.graph())) == []


def test_a_cycle_through_an_import_inside_a_function_is_found(tmp_path: Path):
    pkg = tmp_path / "vqspeech"
    pkg.mkdir()
    for rel, text in {
        "__init__.py": "",
        "a.py": "from vqspeech import b\n",
        "b.py": "def f():\n    from vqspeech import a\n",
        "c.py": "import vqspeech.a\n",
    }.items():
        (pkg / rel).write_text(text)
    found = names(cycle(imports.graph(pkg)), pkg)
    assert sorted(set(found)) == ["a.py", "b.py"] and found[0] == found[-1]


def test_the_library_never_imports_the_cli():
    cli = imports.ROOT / "cli.py"
    importers = [m for m, deps in imports.graph().items() if cli in deps]
    assert names(importers) == []


def test_every_stage_script_is_params_progress_and_io_around_a_library_call():
    """At most 100 lines each: the work lives in the library, where it is tested."""
    long = {
        p.name: n
        for p in (REPO / "stages").glob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 100
    }
    assert long == {}
