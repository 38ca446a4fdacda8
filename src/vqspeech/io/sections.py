"""Generated sections of Markdown files: the text between `<!-- name:start -->` and
`<!-- name:end -->`, rewritten by the command that measures it (benchmarks, tools/compare.py),
so a table in the docs always comes from a real run, never from hand-copied numbers."""

from __future__ import annotations

from pathlib import Path

from vqspeech.io import atomic


def update_section(doc: Path, name: str, body: str, title: str = "") -> None:
    """Replace the section `name` of `doc` with `body`, or append it (a new file starts with
    `title`); written atomically."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = doc.read_text() if doc.exists() else title
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text:
        if end not in text[text.index(start) :]:
            raise ValueError(f"{doc}: {start} without {end}")
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(doc, text)
