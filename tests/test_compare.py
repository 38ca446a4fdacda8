"""compare: experiment rows to runs, seeds grouped into configurations, figures, table, GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vqspeech.report import compare


def row(
    rev: str,
    k: int,
    seed: int,
    jitter: float,
    pnmi: float,
    state: str | None = "Success",
    **extra: object,
) -> dict:
    r: dict = {
        "Experiment": f"exp-{rev}",
        "rev": rev,
        "typ": "branch_commit",
        "State": state,
        "model.quantizer.codebook_size": k,
        "model.jitter": jitter,
        "train.seed": seed,
        "train.threads": 0,
        "model.channels": 128,
    }
    for _, ours, base, _ in compare.METRICS:
        r[ours] = pnmi if ours == "vqvae.pnmi" else 1.0
        if base:
            r[base] = 0.5
    return {**r, **extra}


def rows() -> list[dict]:
    out = [row(f"a{s}", 64, s, 0.12, 0.40 + 0.02 * s) for s in (1, 2, 3)]
    out += [row(f"b{s}", 16, s, 0.12, 0.30) for s in (1, 2)]
    out += [row("c1", 64, 1, 0.0, 0.2)]
    out += [
        row("q", 64, 4, 0.12, float("nan"), state="Queued"),
        row("f", 64, 5, 0.12, 0.9, state="Failed"),
        {**row("workspace", 64, 0, 0.12, 0.9), "Experiment": None},
    ]
    return out


def test_runs_keep_finished_experiments_only():
    runs = compare.runs(rows())
    assert sorted(runs["rev"]) == ["a1", "a2", "a3", "b1", "b2", "c1"]
    assert len(compare.runs(rows(), include_workspace=True)) == 7
    with pytest.raises(ValueError, match="no finished experiment"):
        compare.runs([row("q", 64, 1, 0.1, float("nan"), state="Queued")])


def test_the_same_run_reached_twice_counts_once():
    twice = [row("a1", 64, 1, 0.1, 0.4), {**row("a1", 64, 1, 0.1, 0.4), "rev": "HEAD~1"}]
    assert len(compare.runs(twice)) == 1


def test_a_metric_name_prefixed_with_its_file_is_found():
    r = row("a1", 64, 1, 0.1, 0.4)
    r["metrics/eval.json:vqvae.pnmi"] = r.pop("vqvae.pnmi")
    assert compare.runs([r])["vqvae.pnmi"].tolist() == [0.4]


def test_experiments_recorded_with_the_old_names_are_read():
    """Before the headline metrics: `vqvae.all.pnmi`; before the nested quantizer params:
    `model.codebook_size`."""
    old = {
        k.replace("vqvae.", "vqvae.all.", 1)
        if k.startswith("vqvae.") and ".abx." not in k
        else k: v
        for k, v in row("a1", 64, 1, 0.1, 0.4).items()
    }
    old["model.codebook_size"] = old.pop("model.quantizer.codebook_size")
    runs = compare.runs([old, row("b1", 16, 1, 0.1, 0.3)])
    assert runs["vqvae.pnmi"].tolist() == [0.4, 0.3]
    assert runs["model.quantizer.codebook_size"].tolist() == [64, 16]


def test_seeds_are_grouped_into_configurations():
    runs = compare.runs(rows())
    assert compare.config_columns(runs) == ["model.quantizer.codebook_size", "model.jitter"]
    summ = compare.summary(runs)
    assert summ["seeds"].tolist() == [2, 1, 3]  # K=16; K=64 jitter 0; K=64 jitter 0.12
    a = summ[(summ["model.quantizer.codebook_size"] == 64) & (summ["model.jitter"] == "0.12")].iloc[
        0
    ]
    assert a["vqvae.pnmi:mean"] == pytest.approx(0.44)
    assert a["vqvae.pnmi:std"] == pytest.approx(np.std([0.42, 0.44, 0.46], ddof=1))
    table = compare.markdown(summ)
    assert "| quantizer.codebook_size | jitter | seeds | PNMI | baseline |" in table
    assert "| 64 | 0.12 | 3 | 0.440 ± 0.020 | 0.500 |" in table


def test_study_table_has_every_system_of_each_configuration_with_its_seed_spread():
    runs = compare.runs([*rows()[:5], row("c1", 64, 1, 0.0, 0.2, **{"kmeans_latent.pnmi": None})])
    table = compare.study_markdown(runs)
    a, b = (
        "| quantizer.codebook_size=64, jitter=0.12 |",
        "| quantizer.codebook_size=16, jitter=0.12 |",
    )
    assert f"{a} learned codes | 3 | 0.440 ± 0.020 |" in table
    assert f"{a} k-means on MFCC | 3 | 0.500 ± 0.000 |" in table
    assert f"{b} k-means on latents | 2 | 1.000 ± 0.000 |" in table
    c1 = [line for line in table.splitlines() if "jitter=0 " in line]
    assert len(c1) == 5 and not any("k-means on latents" in line for line in c1)  # no such run
    assert any("| k-means on MFCC, equal perplexity | 1 | 0.500 |" in line for line in c1)
    assert "| PNMI | NMI | phone purity | perplexity | code ABX within % |" in table
    assert all("| 1 | 0.200 |" in line for line in c1 if "learned codes |" in line)  # no spread
    # named by what differs from the defaults (params.yaml, flattened)
    defaults = compare.flatten({"model": {"quantizer": {"codebook_size": 64}, "jitter": 0.12}})
    named = compare.study_markdown(runs, defaults)
    assert (
        "| default | learned codes | 3 |" in named and "| jitter=0 | learned codes | 1 |" in named
    )
    assert "| quantizer.codebook_size=16 | k-means on MFCC | 2 |" in named
    only = compare.study_markdown(runs, defaults, ("vqvae",))
    assert "learned codes |" in only and "k-means" not in only and "DPDP" not in only


def test_figures(tmp_path: Path):
    """The summary figures; the codebook GIF (a UMAP, 12 s of numba compile) is drawn and
    checked frame by frame in test_stage's experiment-queue test, from a real run's snapshots."""
    runs = compare.runs(rows())
    compare.plot_against_k(compare.summary(runs), tmp_path / "k.png")
    compare.plot_seeds(runs, tmp_path / "s.png")
    curve = pd.DataFrame({"step": [10, 20, 30], "recon": [0.9, 0.7, 0.8]})
    compare.plot_curves(
        {"default": [curve, curve.assign(recon=curve["recon"] + 0.1)], "epochs=30": [curve]},
        tmp_path / "c.png",
        "val recon",
    )
    for name in ("k.png", "s.png", "c.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no val recon curves"):
        compare.plot_curves({}, tmp_path / "none.png", "val recon")
    assert not (tmp_path / "none.png").exists()


def test_earlier_runs_from_a_runs_csv_join_new_experiments_as_the_same_configurations(
    tmp_path: Path,
):
    earlier = compare.runs(rows()[:5])  # 3 seeds at K=64, 2 at K=16
    earlier.to_csv(tmp_path / "runs.csv", index=False)
    back = pd.read_csv(tmp_path / "runs.csv")
    # now: a third K=16 seed, the K=64 seed 3 run again, and a new knob the earlier runs lack
    new = compare.runs(
        [
            row("b3", 16, 3, 0.12, 0.36, **{"model.family": "vqvae"}),
            {
                **row("b2", 16, 2, 0.12, 0.30, **{"model.family": "vqvae"}),
                "Experiment": None,
            },  # b2 reached again as its commit
            row("a3", 64, 3, 0.12, 0.50, **{"model.family": "vqvae"}),
            row("v1", 64, 1, 0.12, 0.10, **{"model.family": "vqcpc"}),
        ]
    )
    defaults = {"model.family": "vqvae", "model.jitter": 0.12}
    both = compare.with_earlier_runs(new, back, defaults)
    assert len(both) == 5 + 3 - 1  # exp-a3 replaced by its new run
    assert both.loc[both["name"] == "exp-a3", "vqvae.pnmi"].item() == 0.5
    summ = compare.summary(both)
    seeds = dict(
        zip(summ["model.family"] + "/" + summ[compare.K].astype(str), summ["seeds"], strict=True)
    )
    assert seeds == {"vqvae/16": 3, "vqvae/64": 3, "vqcpc/64": 1}
    assert "| family=vqcpc | learned codes | 1 | 0.100 |" in compare.study_markdown(
        both[both[compare.K] == 64], defaults
    )
    # a rerun of the same params and seed under another name replaces the earlier run
    rerun = compare.runs([row("z1", 16, 1, 0.12, 0.33, **{"model.family": "vqvae"})])
    again = compare.with_earlier_runs(rerun, back, defaults)
    k16 = again[again[compare.K] == 16].set_index(compare.SEED)
    assert len(again) == 5 and k16.loc[1, "name"] == "exp-z1" and k16.loc[1, "vqvae.pnmi"] == 0.33
    alone = compare.with_earlier_runs(None, back, defaults)  # no experiment in this clone
    assert sorted(compare.summary(alone)["seeds"]) == [2, 3]


def test_one_run_of_two_commits_is_one_seed_whatever_knobs_were_added_between():
    """The same run reached as the baselines of two commits, the older lacking an integer knob
    the newer has (whose column pandas then holds as floats): one run, one seed."""
    old = row("c1", 64, 0, 0.12, 0.30, **{"model.family": "vqvae"})
    new = {**row("c2", 64, 0, 0.12, 0.30, **{"model.family": "vqvae"}), "train.views": 0}
    later = {**row("c3", 64, 1, 0.12, 0.31, **{"model.family": "vqvae"}), "train.views": 0}
    table = compare.runs([old, new, later])
    defaults = {"model.family": "vqvae", "model.jitter": 0.12, "train.views": 0}
    both = compare.with_earlier_runs(table, pd.DataFrame(columns=["name"]), defaults)
    assert len(both) == 2 and sorted(both[compare.SEED]) == [0, 1]
    assert compare.summary(both)["seeds"].tolist() == [2]


def test_a_knob_whose_default_changed_the_behaviour_gets_its_earlier_value(tmp_path: Path):
    """Earlier VQ-CPC runs had the centred encoder: model.cpc.causal is false for them, not
    the new default, so they stay a configuration apart from the causal runs."""
    cpc = {"model.family": "vqcpc"}
    earlier = compare.runs(
        [row("c0", 64, 0, 0.12, 0.10, **cpc), row("c1", 64, 1, 0.12, 0.12, **cpc)]
    )
    earlier.to_csv(tmp_path / "runs.csv", index=False)
    causal = {**cpc, "model.cpc.causal": True}
    new = compare.runs([row("d0", 64, 0, 0.12, 0.20, **causal)])
    defaults = {"model.family": "vqvae", "model.cpc.causal": True}
    both = compare.with_earlier_runs(new, pd.read_csv(tmp_path / "runs.csv"), defaults)
    assert dict(zip(both["name"], both["model.cpc.causal"], strict=True)) == {
        "exp-c0": False,
        "exp-c1": False,
        "exp-d0": True,
    }
    assert sorted(compare.summary(both)["seeds"]) == [1, 2]


def test_a_knob_of_one_family_does_not_split_the_other_familys_earlier_runs(tmp_path: Path):
    """model.cpc.causal came with default true, earlier VQ-CPC runs had false; earlier VQ-VAE
    runs have no such knob and stay one configuration with the new VQ-VAE runs."""
    earlier = compare.runs(
        [
            row("a1", 64, 1, 0.5, 0.30, **{"model.family": "vqvae"}),
            row("c1", 64, 1, 0.5, 0.10, **{"model.family": "vqcpc"}),
        ]
    )
    new = compare.runs(
        [
            row("a2", 64, 2, 0.5, 0.32, **{"model.family": "vqvae", "model.cpc.causal": True}),
            row("c2", 64, 2, 0.5, 0.05, **{"model.family": "vqcpc", "model.cpc.causal": True}),
        ]
    )
    defaults = {"model.family": "vqvae", "model.cpc.causal": True, "model.jitter": 0.5}
    both = compare.with_earlier_runs(new, earlier, defaults).set_index("rev")
    causal = both["model.cpc.causal"]
    assert causal["a1"] is True and causal["c1"] is False
    seeds = compare.summary(both.reset_index()).set_index(["model.family", "model.cpc.causal"])
    assert seeds["seeds"].to_dict() == {
        ("vqvae", "True"): 2,
        ("vqcpc", "False"): 1,
        ("vqcpc", "True"): 1,
    }


def test_earlier_runs_alone_lacking_new_metrics_and_a_knob_written_for_every_family(
    tmp_path: Path,
):
    """A runs.csv of before a metric existed still tabulates alone (a fresh clone); one that
    wrote a VQ-CPC knob's earlier value on VQ-VAE rows too is read with the default there."""
    earlier = compare.runs(
        [
            row("a1", 64, 1, 0.5, 0.30, **{"model.family": "vqvae"}),
            row("c1", 64, 1, 0.5, 0.10, **{"model.family": "vqcpc"}),
        ]
    )
    earlier = earlier.drop(columns=["kmeans_mfcc_matched.pnmi"]).assign(
        **{"model.cpc.causal": False}
    )
    earlier.to_csv(tmp_path / "runs.csv", index=False)
    defaults = {"model.family": "vqvae", "model.cpc.causal": True}
    alone = compare.with_earlier_runs(None, pd.read_csv(tmp_path / "runs.csv"), defaults)
    causal = alone.set_index("rev")["model.cpc.causal"]
    assert causal["a1"] is True and causal["c1"] is False
    assert "| default | learned codes | 1 | 0.300 |" in compare.study_markdown(alone, defaults)


def test_the_newest_of_two_experiments_of_one_configuration_and_seed_is_kept():
    # dvc exp show lists experiments newest first
    new, old = row("n1", 64, 1, 0.5, 0.35), row("o1", 64, 1, 0.5, 0.30)
    assert list(compare.runs([new, old])["rev"]) == ["n1"]
    earlier = compare.runs([row("e1", 64, 1, 0.5, 0.20), row("e2", 64, 2, 0.5, 0.25)])
    both = compare.with_earlier_runs(compare.runs([new, old]), earlier, {})
    assert sorted(both["rev"]) == ["e2", "n1"]


def test_an_experiment_of_a_commit_before_a_knob_gets_its_default():
    older = row("x1", 64, 1, 0.5, 0.3)  # no model.target: its commit did not have the knob
    newer = row("y1", 64, 2, 0.5, 0.3, **{"model.target": "logmel"})
    earlier = compare.runs([row("e1", 64, 3, 0.5, 0.2)])
    both = compare.with_earlier_runs(
        compare.runs([newer, older]), earlier, {"model.target": "input"}
    ).set_index("rev")
    assert both["model.target"].to_dict() == {"e1": "input", "x1": "input", "y1": "logmel"}
    assert "| target=logmel | learned codes | 1 |" in compare.study_markdown(
        both.reset_index(), {"model.target": "input"}
    )


def test_default_run_tables_come_from_the_report():
    scores = {
        "nmi": 0.3,
        "ami": 0.29,
        "ari": 0.2,
        "pnmi": 0.31,
        "phone_purity": 0.3,
        "one_to_one": 0.2,
        "code_perplexity": 45.94,
        "bitrate": 274.6,
        "boundary_f1": 0.48,
        "mean_run_length": 1.45,
        "codes_used": 64,
    }
    abx = {"within": 16.271, "across": 22.5, "items": 11179}
    report = {
        "vqvae": {"all": scores, "abx": {"latent": abx, "code": abx}},
        "kmeans_mfcc_matched": {
            "all": {**scores, "pnmi": 0.28},
            "k": 61,
            "abx": {"code": {**abx, "across": None}},
        },
    }
    text = compare.default_markdown(report)
    assert "| system (K=64) | NMI |" in text
    row_ = "| vqvae | 0.300 | 0.290 | 0.200 | 0.310 | 0.300 | 0.200 | 45.9 | 275 | 0.480 | 1.45 |"
    assert row_ in text
    assert "| kmeans_mfcc_matched (K'=61) | 0.300 | 0.290 | 0.200 | 0.280 |" in text
    assert "kmeans_mfcc |" not in text  # not in the report, not in the table
    assert "| VQ-VAE code vectors | 11,179 | 16.27 | 22.50 |" in text
    assert (
        f"| k-means on MFCC at equal perplexity, centroids | 11,179 | 16.27 | {compare.NONE} |"
        in text
    )
    head = compare.headline_markdown(report)
    assert "| VQ-VAE codes | 0.310 | 0.300 | 16.27 | 22.50 | 275 |" in head
    equal = "| k-means on MFCC at equal perplexity (K'=61) | 0.280 | 0.300 | 16.27 |"
    assert f"{equal} {compare.NONE} | 275 |" in head
    assert "same K" not in head and "random" not in head  # systems the report lacks are left out
    assert "speaker-ID probe" not in text  # a report without the probe: no probe table
    report["vqvae"]["speaker_probe"] = {"chance": 1 / 12, "latent": 0.2468, "code": 0.1372}
    report["mfcc"] = {"speaker_probe": {"chance": 1 / 12, "frames_20ms": 0.417}}
    text = compare.default_markdown(report)
    assert "| linear speaker-ID probe (chance 0.083) | accuracy |" in text
    assert "| VQ-VAE latents (continuous) | 0.247 |\n| VQ-VAE code vectors | 0.137 |" in text
    assert text.rstrip().endswith("| MFCC frames paired to 20 ms | 0.417 |")


def test_lineup_has_one_row_per_family_at_its_best_configuration_beside_kmeans():
    def run(rev: str, family: str, seed: int, jitter: float, pnmi: float) -> dict:
        extra = {
            "model.family": family,
            "kmeans_mfcc.pnmi": 0.25,
            "vqvae.abx.code.across": 20.0,
            "kmeans_mfcc.abx.code.across": 25.0,
            "vqvae.speaker_probe.latent": 0.4,
            "mfcc.speaker_probe.frames_20ms": 0.6,
            "vqvae.speaker_probe.chance": 1 / 12,
            "train_seconds": 300.0 + seed,
        }
        return row(rev, 64, seed, jitter, pnmi, **extra)

    rows_ = [run(f"v{s}", "vqvae", s, 0.5, 0.30 + 0.01 * s) for s in (0, 1, 2)]
    rows_ += [run(f"w{s}", "vqvae", s, 0.12, 0.20) for s in (0, 1, 2)]
    rows_ += [run("x0", "vqvae", 0, 0.9, 0.9)]  # best PNMI, but one seed: not the best config
    rows_ += [run(f"c{s}", "cpc", s, 0.5, 0.10) for s in (0, 1, 2)]
    model = {"family": "vqvae", "quantizer": {"codebook_size": 64}, "jitter": 0.5}
    table = compare.lineup_markdown(compare.runs(rows_), compare.flatten({"model": model}))
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| family | configuration | seeds | PNMI |")
    vq = [line for line in lines if line.startswith("| vqvae |")]
    assert vq == [
        "| vqvae | default | 3 | 0.310 ± 0.010 | 0.250 ± 0.000 | 1.24x | 1.00 ± 0.00 | "
        "20.00 ± 0.00 | 25.00 ± 0.00 | 0.80x | 0.400 ± 0.000 | 0.600 ± 0.000 (0.083) | "
        "1 ± 0 | 301 ± 1 |"
    ]
    assert any(line.startswith("| cpc | family=cpc | 3 | 0.100 ± 0.000 |") for line in lines)
    # the README's: k-means and the ratio in the learned system's cells, no MFCC probe
    short = compare.lineup_markdown(
        compare.runs(rows_), compare.flatten({"model": model}), short=True
    ).splitlines()
    assert len(short) == 4 and "probe, MFCC" not in short[0]
    assert short[2] == (
        "| vqvae | default | 3 | 0.310 ± 0.010 (0.250; 1.24x) | 1.00 ± 0.00 | "
        "20.00 ± 0.00 (25.00; 0.80x) | 0.400 ± 0.000 | 1 ± 0 | 301 ± 1 |"
    )


def test_a_run_recorded_under_a_params_old_name_is_the_same_configuration(tmp_path: Path):
    new = row("n0", 64, 0, 0.12, 0.3, **{"model.quantizer.kmeans_init": True})
    old = row("o1", 64, 1, 0.12, 0.5, **{"train.kmeans_init": True})
    earlier = compare.runs([old])
    assert "model.quantizer.kmeans_init" in earlier and "train.kmeans_init" not in earlier
    runs = compare.with_earlier_runs(compare.runs([new]), earlier, {})
    assert compare.summary(runs)["seeds"].tolist() == [2]  # one configuration, two seeds


def test_resynthesis_markdown_lists_every_system_beside_the_originals():
    synthesis = {
        "units": {
            "systems": {
                "original": {"wer": 0.5, "per": 0.25},
                "vocoder_ceiling": {"wer": 0.55, "mcd_db": 0.531},
                "vqvae": {
                    "wer": 0.9167,
                    "mcd_db": 3.181,
                    "conversion_target_share": 0.1111,
                    "conversion_chance": 0.025,
                    "rtf": 0.702,
                },
            }
        }
    }
    table = compare.resynthesis_markdown(synthesis).splitlines()
    n = compare.NONE
    assert table[2] == f"| original recordings | 50.0 | 25.0 | {n} | {n} | {n} |"
    assert table[3].startswith("| vocoder ceiling")
    assert table[3].endswith(f"| 55.0 | {n} | 0.53 | {n} | {n} |")
    assert table[4] == f"| VQ-VAE codes | 91.7 | {n} | 3.18 | 0.11 (0.025) | 0.70 |"
    with pytest.raises(ValueError, match="no `units`"):
        compare.resynthesis_markdown({"decoder": "deconv"})
