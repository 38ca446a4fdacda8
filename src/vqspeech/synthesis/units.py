"""The unit systems the synthesize stage resynthesizes, each coding an utterance exactly as the
evaluate stage scored it (one code per 20 ms latent):

- `vqvae`: the trained model's own codes (for the families whose units are k-means of their
  latents, those k-means codes): for held-out utterances the very codes align wrote
  (data/codes/codes.parquet, `stored_codes`), so batching and device cannot change them; train
  utterances, which align does not code, are encoded here;
- `kmeans_mfcc`: k-means with the model's K on paired MFCC frames, fitted on `train_frames` of the
  whole train split with the run's seed (`evaluate.kmeans`: the same fit as evaluate's);
- `kmeans_latent`: k-means with the model's K on the model's latents (align's, for held-out
  utterances), fitted on align's sample of train latents (data/codes/train_latents.parquet) with
  the run's seed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from vqspeech.evaluate import kmeans
from vqspeech.evaluate.codes import read_train_latents
from vqspeech.evaluate.encode import encode
from vqspeech.evaluate.heldout import pair_frames
from vqspeech.features import shards
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer

Stored = Mapping[str, tuple[np.ndarray, np.ndarray]]  # utterance id -> (codes [L], latents [L, E])


def stored_codes(codes_dir: str | os.PathLike[str], ids: Sequence[str]) -> dict[str, tuple]:
    """The codes and latents align wrote for the utterances `ids` (data/codes/codes.parquet),
    each in frame order; ValueError naming the file when one is missing."""
    path = Path(codes_dir) / "codes.parquet"
    table = pq.read_table(path, columns=["utterance_id", "frame", "code", "latent"])
    wanted = pa.array(list(ids), type=pa.string())
    table = table.filter(pc.is_in(table.column("utterance_id"), value_set=wanted))
    out = {}
    uid_col = table.column("utterance_id").to_numpy(zero_copy_only=False)
    frames, codes = table.column("frame").to_numpy(), table.column("code").to_numpy()
    latents = np.asarray(table.column("latent").to_pylist(), dtype=np.float32)
    for uid in ids:
        rows = np.flatnonzero(uid_col == uid)
        if len(rows) == 0:
            raise ValueError(f"{path}: no codes of {uid} (rerun the align stage)")
        rows = rows[np.argsort(frames[rows], kind="stable")]
        out[uid] = (codes[rows].astype(np.int64), latents[rows])
    return out


class Coder:
    """Codes utterances for each of `systems`; the k-means systems are fitted on creation."""

    def __init__(
        self,
        systems: Sequence[str],
        model: torch.nn.Module,
        norm: Normalizer,
        features_dir: str | os.PathLike[str],
        codes_dir: str | os.PathLike[str],
        seed: int,
        batch_size: int = 32,
    ) -> None:
        self.systems, self.model, self.norm = list(systems), model, norm
        self.batch_size = batch_size
        self.k = int(model.quantizer.codebook_size)  # type: ignore[union-attr]
        self.mfcc = self.latent = None
        if "kmeans_mfcc" in self.systems:
            train = kmeans.train_frames(shards.iter_utterances(features_dir, "train"), norm, seed)
            self.mfcc = kmeans.kmeans(train, self.k, seed)
        if "kmeans_latent" in self.systems:
            latents = read_train_latents(codes_dir)
            if latents is None:
                raise ValueError(
                    f"{codes_dir}: no train_latents.parquet for kmeans_latent (eval.train_latents "
                    "is 0): leave kmeans_latent out of synthesize.units.systems"
                )
            self.latent = kmeans.kmeans(latents.astype(np.float64), self.k, seed)

    def codes(
        self, utterances: Sequence[Utterance], stored: Stored | None = None
    ) -> dict[str, list[np.ndarray]]:
        """For each system, the int64 codes [T // 2] of every utterance, in order; the model's
        codes and latents of the utterances in `stored` are taken from it (align's)."""
        out: dict[str, list[np.ndarray]] = {s: [] for s in self.systems}
        model: dict[str, tuple[np.ndarray, np.ndarray]] = dict(stored or {})
        todo = [u for u in utterances if u.utterance_id not in model]
        if {"vqvae", "kmeans_latent"} & set(self.systems) and todo:
            device = torch.device("cpu")
            for e in encode(self.model, todo, self.norm, device, self.batch_size):
                model[e.utterance.utterance_id] = (e.codes, e.latents)
        for u in utterances:
            if u.utterance_id in model and len(model[u.utterance_id][0]) != len(u.features) // 2:
                raise ValueError(
                    f"{u.utterance_id}: {len(model[u.utterance_id][0])} stored codes for "
                    f"{len(u.features)} frames (the codes are of other features: rerun align)"
                )
            if "vqvae" in out:
                out["vqvae"].append(model[u.utterance_id][0].astype(np.int64))
            if self.mfcc is not None:
                paired = pair_frames(self.norm(u.features, np.float64))
                out["kmeans_mfcc"].append(self.mfcc.predict(paired).astype(np.int64))
            if self.latent is not None:
                z = model[u.utterance_id][1].astype(np.float64)
                out["kmeans_latent"].append(self.latent.predict(z).astype(np.int64))
        return out
