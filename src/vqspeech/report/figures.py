"""The figures stage's work: every figure of the held-out codes into one folder (what each shows:
vqspeech.report.plots), including the per-utterance panels, which run the model once more on a
few utterances (their reconstruction and code distances)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from vqspeech.evaluate.heldout import Rows
from vqspeech.evaluate.metrics import Contingency
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer
from vqspeech.report import plots as P

log = logging.getLogger(__name__)


def draw(
    folder: Path,
    frames: pd.DataFrame,
    latents: Callable[[], Iterable[np.ndarray]],
    codebook: np.ndarray,
    panels_of,
    *,
    utterances: int,
    umap_points: int,
    seconds: float,
    seed: int,
) -> None:
    """Every figure into `folder`. `frames`: the frame table (grouped by utterance);
    `latents()`: a pass over its latents in row order, a part at a time (called three times);
    `panels_of(ids, order)` returns the UtterancePanels of held-out utterances `ids`, codes
    shown in `order`."""
    phones, codes = frames["phone"].to_numpy(), frames["code"].to_numpy()
    table = Contingency.of(phones, codes)
    order = P.code_order(table, P.phone_rank(table.phones))
    order += [c for c in range(len(codebook)) if c not in order]  # unused codes last
    P.heatmap(table, folder / "heatmap.png")
    P.bigrams(
        P.sequences(frames, "phone"), P.sequences(frames, "code"), table, folder / "bigrams.png"
    )
    phone_rows, code_rows = P.frequencies(table)
    P.write_rows(folder / "phone_frequency.json", phone_rows)
    P.write_rows(folder / "code_frequency.json", code_rows)

    def with_codes() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        at = 0
        for part in latents():
            yield part, codes[at : at + len(part)]
            at += len(part)

    P.write_rows(folder / "distances.json", P.streamed_distance_histograms(with_codes, codebook))
    if umap_points:
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(frames), min(umap_points, len(frames)), replace=False))
        picked = Rows(pick)
        at = 0
        for part in latents():
            picked.add(part, slice(at, at + len(part)))
            at += len(part)
        started = time.perf_counter()
        speakers = frames["speaker"].to_numpy()[pick]
        P.umap(
            picked.result(),
            codes[pick],
            phones[pick],
            speakers,
            codebook,
            folder / "umap.png",
            seed,
        )
        log.info(
            "UMAP of %d latents + %d codes in %.1f s",
            len(pick),
            len(codebook),
            time.perf_counter() - started,
        )
    else:
        log.info("eval.plots.umap_points is 0: no UMAP figure (umap.png not written)")
    ids = sorted(set(frames["utterance_id"]))[:utterances]
    P.utterance_figure(panels_of(ids, order), folder / "utterances.png", seconds)


def utterance_panels(
    model,
    utts: dict[str, Utterance],
    norm: Normalizer,
    audio_paths: dict[str, str],
    textgrids: dict[str, str],
    ids: Sequence[str],
    order: list[int],
) -> list[P.UtterancePanels]:
    """Audio, normalized features, code distances (softmax), codes and phones, and the deconv
    decoder's reconstruction (a WaveNet's are the synthesize stage's), of each of `ids`."""
    import soundfile as sf
    import torch

    from vqspeech.data.textgrid import read_phones

    model.eval()
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    panels = []
    for uid in ids:
        u = utts[uid]
        audio, sr = sf.read(audio_paths[uid], dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)[round(u.start_s * sr) :]
        x = norm(u.features, np.float64)
        with torch.no_grad():
            _, vq = model.encode(torch.from_numpy(x.astype(np.float32))[None])
            recon = None
            if model.cfg.family == "vqvae" and model.cfg.decoder == "deconv":
                speaker = model.speaker_vectors(torch.tensor([-1]))
                recon = model.decoder(vq.quantized, speaker)[0].cpu().numpy()
        soft = torch.softmax(-vq.distances[0], dim=-1).cpu().numpy()[:, order]
        phones = [
            (iv.start - u.start_s, iv.end - u.start_s, iv.label)
            for iv in read_phones(textgrids[uid]).intervals
        ]
        panels.append(
            P.UtterancePanels(
                uid,
                audio[: int(len(u.features) * 0.01 * sr) + 240],
                sr,
                x,
                soft,
                position[vq.codes[0].cpu().numpy()],
                phones,
                recon,
            )
        )
    return panels
