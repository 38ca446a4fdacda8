"""plots/synthesis/index.html: the resynthesis to listen to, offline (no script, no remote file).

One section per converted utterance: its transcript, then a row per version (original, the
vocoder's ceiling, each system's reconstruction and conversions) with an audio player, what the
recognizer heard, and the utterance's spectrograms (one image, a row per version). Then the scores
table of metrics/synthesis.json's `units`. Links are relative, so the page works from a clone's
working tree or a copy of both folders that keeps their places.
"""

from __future__ import annotations

import html
import os
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from vqspeech.synthesis.resynthesis import Version

LINK = re.compile(r'(?:src|href)="([^"]+)"')


def links(text: str) -> list[str]:
    """Every src= / href= of a page, in order, as file paths (unescaped, unquoted)."""
    return [urllib.parse.unquote(html.unescape(x)) for x in LINK.findall(text)]


def render(
    versions: Sequence[Version],
    shown: Sequence[str],
    transcripts: Mapping[str, str],
    scores: Mapping[str, Mapping[str, object]],
    wav_dir: Path,
    page_dir: Path,
    images: Mapping[str, str],
) -> str:
    """The page's HTML. `shown`: the utterance ids with a section; `images[uid]`: its
    spectrogram file name in `page_dir`; audio linked at `wav_dir / version.path`."""
    rel = os.path.relpath(wav_dir, page_dir).replace(os.sep, "/")
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8"><title>vqspeech resynthesis</title>',
        "<style>body{font-family:sans-serif;max-width:72em;margin:auto}"
        "td,th{padding:2px 8px;text-align:left}audio{height:2em}"
        "img{max-width:100%}</style></head><body>",
        "<h1>Resynthesis of each unit system</h1>",
        "<p>Codes &rarr; unit-to-spectrogram decoder &rarr; Griffin-Lim. <i>vocoder_ceiling</i> "
        "is Griffin-Lim of the original's own log-mel: the best any system can sound here. "
        "Reconstructions are decoded as the mean training speaker (held-out speakers were not "
        "trained on); <i>as_&lt;speaker&gt;</i> are conversions.</p>",
        "<h2>Scores</h2>",
        _table(scores),
    ]
    for uid in shown:
        parts.append(f"<h2>{e(uid)}</h2><p>transcript: <i>{e(transcripts.get(uid, ''))}</i></p>")
        parts.append("<table><tr><th>system</th><th>version</th><th>audio</th><th>heard</th></tr>")
        for v in (v for v in versions if v.utterance_id == uid):
            src = e(urllib.parse.quote(f"{rel}/{v.path}"))
            heard = "" if v.heard is None else e(v.heard)
            parts.append(
                f"<tr><td>{e(v.system)}</td><td>{e(v.name)}</td>"
                f'<td><audio controls preload="none" src="{src}"></audio></td>'
                f"<td>{heard}</td></tr>"
            )
        parts.append("</table>")
        if uid in images:
            img = e(urllib.parse.quote(images[uid]))
            parts.append(f'<p><img alt="spectrograms of {e(uid)}" src="{img}"></p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _table(scores: Mapping[str, Mapping[str, object]]) -> str:
    columns = list(dict.fromkeys(c for row in scores.values() for c in row))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["system", *columns])
    rows = []
    for system, row in scores.items():
        cells = "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in columns)
        rows.append(f"<tr><td>{html.escape(system)}</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _fmt(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
