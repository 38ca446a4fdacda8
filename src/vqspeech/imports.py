"""Which of the package's own modules a script or module runs: its import closure, read from the
source (no import is executed).

DVC reruns a stage only when a declared dep changes, so every module in a stage script's closure
must be covered by its deps (a test checks dvc.yaml against this); the train stage hashes the
closure of `vqspeech.train.loop` into its run key, so a checkpoint of other code is never resumed.
Imports inside functions count too: they run when the function does.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

PACKAGE = "vqspeech"
ROOT = Path(__file__).resolve().parent  # src/vqspeech


def module_file(name: str, root: Path = ROOT) -> Path | None:
    """`vqspeech.model.vqvae` -> its .py file (a package's __init__.py), or None if not ours."""
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root).with_suffix("")
    parts = [PACKAGE, *rel.parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(path: Path, root: Path) -> set[Path]:
    """Our modules that `path` imports directly, with the packages they sit in."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing module's package
                here = _module_name(path, root).split(".")
                if path.name != "__init__.py":
                    here = here[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join(here + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]  # submodules by name
    found: set[Path] = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__
            f = module_file(".".join(parts[:i]), root)
            if f is not None:
                found.add(f)
    return found


def graph(root: Path = ROOT) -> dict[Path, set[Path]]:
    """Every module of the package -> the package's modules it imports (itself left out)."""
    return {p: _imported(p, root) - {p} for p in sorted(root.rglob("*.py"))}


def closure(start: str | os.PathLike[str], root: Path = ROOT) -> list[Path]:
    """Every module of the package that running `start` (a script or module file) may import,
    `start` itself included when it is one of ours; sorted."""
    start = Path(start).resolve()
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += sorted(_imported(path, root) - seen)
    if not start.is_relative_to(root):
        seen.discard(start)
    return sorted(seen)


def deps(script: str | os.PathLike[str], root: Path = ROOT) -> list[str]:
    """The dvc.yaml deps that cover `script`'s closure: a subpackage as one folder, a top-level
    module as its file; paths relative to the repository (root's grandparent)."""
    repo = root.parent.parent
    out = set()
    for f in closure(script, root):
        rel = f.relative_to(root)
        out.add((root / rel.parts[0]) if len(rel.parts) > 1 else f)
    return sorted(p.relative_to(repo).as_posix() for p in out)


if __name__ == "__main__":  # python -m vqspeech.imports stages/train.py: the deps to declare
    import sys

    for arg in sys.argv[1:]:
        print(f"{arg}:", *(f"  - {d}" for d in deps(arg)), sep="\n")
