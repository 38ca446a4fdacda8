"""An HTML template for `dvc plots show` that renders with no internet.

DVC's default page loads vega, vega-lite and vega-embed from a CDN. `make setup` installs the
versions pinned in web/package-lock.json from the npm registry, and this module inlines their
minified builds into `.dvc/plots/offline.html`, which `.dvc/config` names as `plots.html_template`.
The page DVC writes is then self-contained: it can be opened offline or mailed around.

    python -m vqspeech.report.vega_page web/node_modules .dvc/plots/offline.html
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from vqspeech.io import atomic

BUILDS = (
    ("vega", "build/vega.min.js"),
    ("vega-lite", "build/vega-lite.min.js"),
    ("vega-embed", "build/vega-embed.min.js"),
)


def template(node_modules: Path) -> str:
    scripts = []
    for package, build in BUILDS:
        root = node_modules / package
        try:
            version = json.loads((root / "package.json").read_text())["version"]
            code = (root / build).read_text(encoding="utf-8")
        except FileNotFoundError as err:
            raise FileNotFoundError(
                f"{err.filename}: missing; run `make setup` (npm ci in web/)"
            ) from None
        if "</script" in code.lower():
            raise ValueError(f"{root / build}: contains '</script', cannot be inlined")
        scripts.append(f"<script>/* {package} {version} */\n{code}\n</script>")
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n    {refresh_tag}\n    <meta charset="utf-8">\n'
        "    <title>vqspeech plots</title>\n" + "\n".join(scripts) + "\n"
        "    <style>\n        table { border-spacing: 15px; }\n        img { max-width: 100%; }\n"
        "    </style>\n</head>\n<body>\n    {plot_divs}\n</body>\n</html>\n"
    )


def main(argv: list[str]) -> int:
    node_modules, out = Path(argv[0]), Path(argv[1])
    atomic.write_text(out, template(node_modules))
    print(f"wrote {out} (vega, vega-lite, vega-embed inlined from {node_modules})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
