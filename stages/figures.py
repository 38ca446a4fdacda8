"""figures stage: figures of the held-out codes (see vqspeech.plots for what each shows).

Reads data/codes (codes, latents, codebook), models/model.pt (for the softmax panel and the
reconstruction), data/features, data/stats.json and the audio and TextGrids named in
data/manifest.parquet. Writes plots/eval/: heatmap.png, bigrams.png, umap.png,
utterances.png, and phone_frequency.json, code_frequency.json, distances.json for `dvc plots`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import numpy as np
import soundfile as sf
import torch
import typer

from vqspeech import atomic, manifest, shards, stagelog
from vqspeech import plots as P
from vqspeech.align import read_codes
from vqspeech.contingency import Contingency
from vqspeech.textgrid import read_phones
from vqspeech.training import load_model

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
log = stagelog.setup()
Opt = typer.Option


@app.command()
def main(
    params_file: Annotated[Path, Opt("--params")] = Path("params.yaml"),
    codes_dir: Annotated[Path, Opt("--codes")] = Path("data/codes"),
    model_path: Annotated[Path, Opt("--model")] = Path("models/model.pt"),
    features_dir: Annotated[Path, Opt("--features")] = Path("data/features"),
    stats_path: Annotated[Path, Opt("--stats")] = Path("data/stats.json"),
    manifest_path: Annotated[Path, Opt("--manifest")] = Path("data/manifest.parquet"),
    out_dir: Annotated[Path, Opt("--out")] = Path("plots/eval"),
) -> None:
    """Draw the evaluation figures."""
    params = stagelog.load_params_or_exit(log, params_file)
    atomic.remove_stale(out_dir)
    cfg, seed = params.eval.plots, params.train.seed
    with stagelog.timed(log, "figures"), stagelog.exit_on_error(log):
        frames, latents, codebook = read_codes(codes_dir)
        phones, codes = frames["phone"].to_numpy(), frames["code"].to_numpy()
        table = Contingency.of(phones, codes)
        order = P.code_order(table, P.phone_rank(table.phones))
        order += [c for c in range(len(codebook)) if c not in order]  # unused codes last
        with atomic.atomic_dir(out_dir) as tmp:
            P.heatmap(table, tmp / "heatmap.png")
            P.bigrams(P.sequences(frames, "phone"), P.sequences(frames, "code"), table,
                      tmp / "bigrams.png")  # fmt: skip
            phone_rows, code_rows = P.frequencies(table)
            P.write_rows(tmp / "phone_frequency.json", phone_rows)
            P.write_rows(tmp / "code_frequency.json", code_rows)
            P.write_rows(tmp / "distances.json", P.distance_histograms(latents, codes, codebook))
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(len(frames), min(cfg.umap_points, len(frames)),
                                      replace=False))  # fmt: skip
            with stagelog.timed(log, f"UMAP of {len(pick)} latents + {len(codebook)} codes"):
                speakers = frames["speaker"].to_numpy()[pick]
                P.umap(latents[pick], codes[pick], phones[pick], speakers, codebook,
                       tmp / "umap.png", seed)  # fmt: skip
            ids = sorted(set(frames["utterance_id"]))[: cfg.utterances]
            panels = utterance_panels(ids, model_path, features_dir, stats_path, manifest_path,
                                      order)  # fmt: skip
            P.utterance_figure(panels, tmp / "utterances.png", cfg.seconds)
        log.info("read %s (%d frames), %s; wrote %s/ (%s)", codes_dir, len(frames), model_path,
                 out_dir, ", ".join(sorted(p.name for p in out_dir.iterdir())))  # fmt: skip


@torch.no_grad()
def utterance_panels(
    ids: list[str], model_path: Path, features_dir: Path, stats_path: Path,
    manifest_path: Path, order: list[int],
) -> list[P.UtterancePanels]:  # fmt: skip
    model, _ = load_model(model_path)
    model.eval()
    stats = json.loads(stats_path.read_text())
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    table = manifest.read(manifest_path).to_pandas().set_index("utterance_id")
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    wanted = set(ids)
    utts = {u.utterance_id: u for u in shards.iter_utterances(features_dir)
            if u.utterance_id in wanted}  # fmt: skip
    panels = []
    for uid in ids:
        u = utts[uid]
        row = table.loc[uid]
        audio, sr = sf.read(row["path"], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)[round(u.start_s * sr) :]
        x = torch.from_numpy(((u.features - mean) / std).astype(np.float32))[None]
        _, vq = model.encode(x)
        recon = None  # a WaveNet decodes audio: its reconstructions are the synthesize stage's
        if model.cfg.decoder == "deconv":
            recon = model.decoder(vq.quantized, model.speaker_vectors(torch.tensor([-1])))[0]
        soft = torch.softmax(-vq.distances[0], dim=-1).numpy()[:, order]
        alignment = read_phones(row["textgrid"])
        phones = [(iv.start - u.start_s, iv.end - u.start_s, iv.label)
                  for iv in alignment.intervals]  # fmt: skip
        panels.append(P.UtterancePanels(
            uid, audio[: int(len(u.features) * 0.01 * sr) + 240], sr,
            (u.features - mean) / std, soft, position[vq.codes[0].numpy()], phones,
            None if recon is None else recon.numpy(),
        ))  # fmt: skip
    return panels


if __name__ == "__main__":
    sys.exit(app())
