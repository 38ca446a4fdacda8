"""evaluate stage: clustering, boundary and ABX scores of the codes beside baselines, same frames.

Reads data/codes (codes, latents, codebook), data/features and data/stats.json; writes
metrics/eval.json with one entry per system, so `dvc metrics show` puts them side by side:
- `vqvae`: clustering and boundary metrics on `all` and `speech` frames; ABX of the continuous
  latents (`abx.latent`) and of the chosen codes' vectors (`abx.code`);
- `kmeans_mfcc`: the same for k-means (same K) on paired MFCC frames, ABX of its centroids;
- `mfcc`: ABX of the paired MFCC frames themselves;
- `random`: uniform random codes (clustering and boundary metrics: chance level).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from vqspeech import abx, atomic, shards, stagelog
from vqspeech.align import read_codes
from vqspeech.evaluate import fit_kmeans, paired_features, rounded, score_system

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
log = stagelog.setup()
Opt = typer.Option


@app.command()
def main(
    params_file: Annotated[Path, Opt("--params")] = Path("params.yaml"),
    codes_dir: Annotated[Path, Opt("--codes")] = Path("data/codes"),
    features_dir: Annotated[Path, Opt("--features")] = Path("data/features"),
    stats_path: Annotated[Path, Opt("--stats")] = Path("data/stats.json"),
    metrics_path: Annotated[Path, Opt("--metrics")] = Path("metrics/eval.json"),
) -> None:
    """Score the VQ-VAE codes and the baselines."""
    params = stagelog.load_params_or_exit(log, params_file)
    atomic.remove_stale(metrics_path)
    k, seed, ev = params.model.codebook_size, params.train.seed, params.eval
    with stagelog.timed(log, "evaluate"), stagelog.exit_on_error(log):
        frames, latents, codebook = read_codes(codes_dir)
        stats = json.loads(stats_path.read_text())
        mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
        with stagelog.timed(log, "k-means baseline"):
            km = fit_kmeans(shards.iter_utterances(features_dir, "train"), mean, std, k, seed)
        held_out = set(frames["utterance_id"])
        keys, mfcc = paired_features(
            (u for u in shards.iter_utterances(features_dir) if u.utterance_id in held_out),
            mean, std,
        )  # fmt: skip
        rows = frames[["utterance_id", "frame"]].merge(
            keys.reset_index(), on=["utterance_id", "frame"], how="left", validate="1:1"
        )["index"]
        if rows.isna().any():
            raise ValueError(f"{features_dir}: no MFCC frames for {int(rows.isna().sum())} "
                             f"of {len(frames)} coded frames")  # fmt: skip
        mfcc = mfcc[rows.to_numpy(dtype=np.int64)]
        kmeans_codes = km.predict(mfcc).astype(np.int64)
        rand = np.random.default_rng(seed).integers(0, k, len(frames))

        result: dict[str, dict] = {}
        for name, codes in (("vqvae", frames["code"].to_numpy()), ("kmeans_mfcc", kmeans_codes),
                            ("random", rand)):  # fmt: skip
            result[name] = score_system(frames.assign(code=codes), ev.boundary_tolerance)
            r = result[name]["all"]
            log.info("%s: NMI %.3f, PNMI %.3f, phone purity %.3f, boundary F1 %.3f",
                     name, r["nmi"], r["pnmi"], r["phone_purity"], r["boundary_f1"])  # fmt: skip

        items = abx.cap_groups(abx.items_from_frames(frames), ev.abx.max_group, seed)
        log.info("ABX: %d triphone items (at most %d per context, speaker and phone)",
                 len(items), ev.abx.max_group)  # fmt: skip
        representations = {
            ("vqvae", "latent"): abx.angular(latents),
            ("vqvae", "code"): abx.angular_codes(frames["code"].to_numpy(), codebook),
            ("kmeans_mfcc", "code"): abx.angular_codes(kmeans_codes, km.cluster_centers_),
            ("mfcc", "frames"): abx.angular(mfcc),
        }
        for (system, rep), distance in representations.items():
            with stagelog.timed(log, f"ABX {system} {rep}"):
                res = abx.abx(items, distance, ev.abx.max_x_across, seed)
            result.setdefault(system, {}).setdefault("abx", {})[rep] = res.as_percent()
            log.info("ABX %s %s: within %.2f %%, across %.2f %%",
                     system, rep, 100 * res.within, 100 * res.across)  # fmt: skip
        atomic.write_text(metrics_path, json.dumps(rounded(result), indent=2) + "\n")
        log.info("read %s (%d frames); wrote %s", codes_dir, len(frames), metrics_path)


if __name__ == "__main__":
    sys.exit(app())
