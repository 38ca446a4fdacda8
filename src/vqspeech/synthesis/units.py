"""The unit systems the synthesize stage resynthesizes, each coding an utterance exactly as the
evaluate stage scored it (one code per 20 ms latent):

- `vqvae`: the trained model's own codes (for the families whose units are k-means of their
  latents, those k-means codes: what align writes);
- `kmeans_mfcc`: k-means with the model's K on paired MFCC frames, fitted on `train_frames` of the
  whole train split with the run's seed (`evaluate.kmeans`: the same fit as evaluate's);
- `kmeans_latent`: k-means with the model's K on the model's latents, fitted on align's sample of
  train latents (data/codes/train_latents.parquet) with the run's seed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from vqspeech.evaluate import kmeans
from vqspeech.evaluate.codes import read_train_latents
from vqspeech.evaluate.encode import encode
from vqspeech.evaluate.heldout import pair_frames
from vqspeech.features import shards
from vqspeech.features.shards import Utterance
from vqspeech.features.stats import Normalizer


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

    def codes(self, utterances: Sequence[Utterance]) -> dict[str, list[np.ndarray]]:
        """For each system, the int64 codes [T // 2] of every utterance, in order."""
        out: dict[str, list[np.ndarray]] = {s: [] for s in self.systems}
        encoded = {}
        if {"vqvae", "kmeans_latent"} & set(self.systems):
            device = torch.device("cpu")
            for e in encode(self.model, list(utterances), self.norm, device, self.batch_size):
                encoded[e.utterance.utterance_id] = e
        for u in utterances:
            if "vqvae" in out:
                out["vqvae"].append(encoded[u.utterance_id].codes.astype(np.int64))
            if self.mfcc is not None:
                paired = pair_frames(self.norm(u.features, np.float64))
                out["kmeans_mfcc"].append(self.mfcc.predict(paired).astype(np.int64))
            if self.latent is not None:
                z = encoded[u.utterance_id].latents.astype(np.float64)
                out["kmeans_latent"].append(self.latent.predict(z).astype(np.int64))
        return out
