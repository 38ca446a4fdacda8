"""Generated Markdown sections: replaced in place, appended when new, never half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from vqspeech.io.sections import update_section


def test_a_section_is_replaced_in_place_or_appended(tmp_path: Path):
    doc = tmp_path / "README.md"
    update_section(doc, "study", "| a |", title="# T\n")
    assert doc.read_text() == "# T\n\n<!-- study:start -->\n| a |\n<!-- study:end -->\n"
    doc.write_text(doc.read_text() + "after\n")
    update_section(doc, "study", "| b |\n")
    assert doc.read_text() == "# T\n\n<!-- study:start -->\n| b |\n<!-- study:end -->\nafter\n"
    doc.write_text("<!-- study:start -->\nno end\n")
    with pytest.raises(ValueError, match="without <!-- study:end -->"):
        update_section(doc, "study", "x")
    assert doc.read_text() == "<!-- study:start -->\nno end\n"  # untouched
