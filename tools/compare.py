"""compare: every finished experiment of the repository side by side. Not a pipeline stage: a
command run by hand after `dvc exp run` (tools/ holds such commands; stages/ only what dvc.yaml
calls).

Reads the experiments through DVC's Python API (`dvc.api.exp_show`, what `dvc exp show` shows) and
writes plots/compare/: lineup.md (one row per model family at its best configuration, beside
k-means on MFCC in the same runs; also the `lineup` section of --results, and a short one
in --readme's),
metrics_vs_codebook_size.png (each metric against K, log axis, error bars
over seeds, the MFCC baseline at the same K dashed), seeds.png (every seed's PNMI and ABX per
configuration), table.md (mean ± std per configuration beside the baseline), study.md (per
configuration, every system's PNMI, NMI, purity, ABX, bitrate and mean run, mean ± std over
seeds), val_recon.png (each configuration's validation reconstruction loss against the step,
per seed and mean: the learning curves, read from each experiment's dvclive files; runs of
`--earlier` have none) and runs.csv; and
codebook.gif, the UMAP of codebook + val latents over training of one run (`--gif-rev`, default
the workspace's models/snapshots.parquet; `--gif-rev none` skips it).

    python tools/compare.py                      # all experiments of the current commit
    python tools/compare.py --rev HEAD~1         # experiments based on an earlier commit
    python tools/compare.py --rev HEAD --rev HEAD~2   # of two commits together
    python tools/compare.py -A --gif-rev exp-a1b2c   # all commits; GIF of one experiment
    python tools/compare.py --readme README.md --results docs/results.md   # and the tables
    python tools/compare.py --earlier plots/compare/runs.csv --results docs/results.md   # with
        # the committed runs whose experiments this clone lacks (DVC keeps experiments locally)
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated

import typer

from vqspeech import cli

app = cli.app(__doc__)
Opt = typer.Option
CURVE = "plots/train/plots/metrics/val/recon.tsv"  # dvclive's val/recon of the train stage


def _commit(repo: Path, rev: str) -> str | None:
    """The full hash of the commit `rev` names in `repo`, or None when it names none."""
    proc = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() or None


@app.command()
def main(
    repo: Annotated[Path, Opt("--repo", help="DVC repository to read.")] = Path("."),
    out_dir: Annotated[Path, Opt("--out", help="Folder to write.")] = Path("plots/compare"),
    all_commits: Annotated[
        bool, Opt("--all-commits", "-A", help="Experiments of every commit, not only HEAD's.")
    ] = False,
    rev: Annotated[
        list[str] | None,
        Opt("--rev", help="Experiments of this commit (default HEAD); repeat for several."),
    ] = None,
    workspace: Annotated[bool, Opt("--workspace", help="Include the workspace's run.")] = False,
    gif_rev: Annotated[
        str, Opt("--gif-rev", help="Experiment or rev for codebook.gif; 'none' skips it.")
    ] = "",
    seed: Annotated[int, Opt("--seed", help="Seed of the GIF's UMAP.")] = 0,
    results: Annotated[
        Path | None,
        Opt(
            "--results",
            help="Also write the whole study table (DPDP too) into this file's `study` section, "
            "and the workspace run's tables (reports/eval.json) into its `default` section, its "
            "resynthesis (metrics/synthesis.json) into `resynthesis`.",
        ),
    ] = None,
    earlier: Annotated[
        Path | None,
        Opt("--earlier", help="runs.csv of an earlier comparison, whose runs are added."),
    ] = None,
    readme: Annotated[
        Path | None,
        Opt(
            "--readme",
            help="Also write the workspace run's headline table (reports/eval.json) into this "
            "file's `headline` section (<!-- headline:start --> ... <!-- headline:end -->), "
            "the short line-up into `lineup` and the resynthesis into `resynthesis`.",
        ),
    ] = None,
) -> None:
    """Plot and tabulate all experiments' metrics."""
    import io
    import json

    import dvc.api
    import pyarrow.parquet as pq
    import yaml
    from dvc.exceptions import DvcException

    from vqspeech.io import atomic, sections
    from vqspeech.report import compare

    with cli.timed("compare"), cli.exit_on_error():
        import pandas as pd

        defaults = compare.flatten(yaml.safe_load((repo / "params.yaml").read_text()))
        rows = dvc.api.exp_show(repo=str(repo), revs=rev or None, num=-1 if all_commits else 1)
        try:
            runs = compare.runs(rows, include_workspace=workspace)
        except ValueError:
            if earlier is None:
                raise
            runs = None
        # experiments of older commits lack the knobs added since: they take the value that
        # kept their behaviour (params.yaml's default), as the earlier runs do
        old = pd.read_csv(earlier) if earlier is not None else pd.DataFrame(columns=["name"])
        runs = compare.with_earlier_runs(runs, old, defaults)
        if earlier is not None:
            cli.log.info("read %s: %d earlier runs", earlier, len(old))
        summ = compare.summary(runs)
        cols = compare.config_columns(runs)
        cli.log.info("%d finished runs in %d configurations (varying: %s)", len(runs), len(summ),
                     ", ".join(cols) or "nothing")  # fmt: skip
        out_dir.mkdir(parents=True, exist_ok=True)
        compare.plot_against_k(summ, out_dir / "metrics_vs_codebook_size.png")
        compare.plot_seeds(runs, out_dir / "seeds.png")
        atomic.write_text(out_dir / "table.md", compare.markdown(summ))
        study = compare.study_markdown(runs, defaults)
        atomic.write_text(out_dir / "study.md", study)
        lineup = compare.lineup_markdown(runs, defaults)
        atomic.write_text(out_dir / "lineup.md", lineup)
        if readme is not None or results is not None:  # every table made before any is written
            report = json.loads((repo / "reports/eval.json").read_text())
            synthesis = json.loads((repo / "metrics/synthesis.json").read_text())
            resynthesis = compare.resynthesis_markdown(synthesis)
            headline, default = compare.headline_markdown(report), compare.default_markdown(report)
        if readme is not None:  # the headline and line-up tables; the study goes to --results
            sections.update_section(readme, "headline", headline)
            short = compare.lineup_markdown(runs, defaults, short=True)
            sections.update_section(readme, "lineup", short)
            sections.update_section(readme, "resynthesis", resynthesis)
        if results is not None:
            sections.update_section(results, "study", study)
            sections.update_section(results, "lineup", lineup)
            sections.update_section(results, "default", default)
            sections.update_section(results, "resynthesis", resynthesis)
        atomic.write_text(out_dir / "runs.csv", runs.to_csv(index=False))
        written = [
            "metrics_vs_codebook_size.png",
            "seeds.png",
            "table.md",
            "study.md",
            "lineup.md",
            "runs.csv",
        ]
        curves: dict[str, list[pd.DataFrame]] = {}
        labels = compare.config_labels(runs, defaults)
        missing = 0
        for (_, run), label in zip(runs.iterrows(), labels, strict=True):
            commit = _commit(repo, str(run["rev"]))  # an earlier run's short hash may be gone,
            if commit is None:  # or now name a blob of this repository
                missing += 1
                continue
            try:
                with dvc.api.open(CURVE, repo=str(repo), rev=commit) as f:
                    curves.setdefault(label, []).append(pd.read_csv(f, sep="\t"))
            except (DvcException, FileNotFoundError):  # an earlier run's experiment; VQ-CPC
                missing += 1
        if curves:
            compare.plot_curves(curves, out_dir / "val_recon.png", "val recon")
            written.append(f"val_recon.png ({len(runs) - missing} runs; {missing} without "
                           "a val/recon curve here)")  # fmt: skip
        if gif_rev != "none":
            path = "models/snapshots.parquet"
            with dvc.api.open(path, repo=str(repo), rev=gif_rev or None, mode="rb") as f:
                snaps = pq.read_table(io.BytesIO(f.read())).to_pandas()
            frames = compare.codebook_animation(snaps, out_dir / "codebook.gif", seed)
            written.append(f"codebook.gif ({frames} epochs of {gif_rev or 'the workspace'})")
        cli.log.info("wrote %s/: %s", out_dir, ", ".join(written))
        print(compare.markdown(summ))


if __name__ == "__main__":
    cli.run(app)
