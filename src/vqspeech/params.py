"""`params.yaml`, validated once into typed objects.

params.yaml is the one place every value is set (the complete record that `dvc params diff` and
`dvc exp show` compare): no field here has a default, so a key missing from it is an error naming
the key, as an unknown or mistyped one is (tests/test_params.py checks that every field is
required). The built-in corpus's presets are the one exception in kind: `data.builtin.preset`
names a set of values, `BUILTIN_PRESETS`, that the keys beside it override.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vqspeech.voices import check_voice

MFCC_CEPSTRA = 13  # mfcc39: 13 cepstra, their deltas and delta-deltas


def nfc(name: str) -> str:
    """A name in Unicode NFC: `José` as typed (NFC) and as macOS stores names (NFD) are one."""
    return unicodedata.normalize("NFC", name)


S = TypeVar("S", bound=BaseModel)


class ParamsError(ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the file and key."""


class _Strict(BaseModel):
    # strict: a value of the wrong type is an error naming the key, never coerced (`true` is no
    # epoch count, '3' no integer, 'yes' no boolean); an integer still counts as a float
    # allow_inf_nan off: `.inf` or `.nan` is no value of any knob (they pass a lower bound)
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Variant(_Strict):
    """A named variant of every voice: f0 scaled from the voice's own, speaking rate scaled."""

    name: str = Field(pattern=r"^[a-z0-9]+$")
    f0_scale: float = Field(gt=0.3, lt=3.0)
    tempo: float = Field(gt=0.3, lt=3.0)


class Range(_Strict):
    """A factor drawn log-uniformly from [low, high] (low == high: always that value)."""

    low: float = Field(gt=0.2, lt=5.0)
    high: float = Field(gt=0.2, lt=5.0)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) is above high ({self.high})")
        return self


class ProsodyParams(_Strict):
    """Per-utterance spread around the speaker's own: each factor is drawn log-uniformly from
    [1 / (1 + x), 1 + x] (0 = every utterance as the speaker speaks)."""

    stretch: float = Field(ge=0, le=1)  # duration
    f0_mean: float = Field(ge=0, le=1)
    f0_range: float = Field(ge=0, le=1)


class HeldOutVoices(_Strict):
    """Speakers kept out of training, by voice (`engine/voice`: all its speakers) or by name."""

    val: list[str]
    test: list[str] = Field(min_length=1)


# The built-in corpus's presets: `data.builtin.preset` picks one, and every key written beside it
# in params.yaml overrides the preset's value (docs/corpus.md lists both presets and every knob).
BUILTIN_PRESETS: dict[str, dict] = {
    # 15 voices of three engines, 4 speakers each (vocal-tract warp, f0 and tempo drawn per
    # speaker), per-utterance prosody and a mild recording channel; val and test hold out whole
    # voices of every engine
    "read": {
        "voices": [
            "flite/awb",
            "flite/rms",
            "flite/slt",
            "flite/kal16",
            "festival/kal_diphone",
            "festival/ked_diphone",
            "festival/cmu_us_slt_arctic_hts",
            "espeak/en-us",
            "espeak/en+f2",
            "espeak/en-gb-scotland",
            "espeak/en-gb-x-rp+f4",
            "espeak/en-gb-x-gbclan",
            "espeak/en-gb-x-gbcwmd",
            "espeak/en-029",
            "espeak/en-us-nyc+f1",
        ],
        "speakers_per_voice": 4,
        "variants": [],
        "warp": {"low": 0.88, "high": 1.12},
        "f0_scale": {"low": 0.85, "high": 1.2},
        "tempo": {"low": 0.88, "high": 1.12},
        "prosody": {"stretch": 0.1, "f0_mean": 0.1, "f0_range": 0.3},
        "channel": "mild",
        "held_out": {
            "val": ["flite/kal16", "espeak/en-029"],
            "test": ["flite/rms", "festival/ked_diphone", "espeak/en-gb-scotland"],
        },
        "utterances_per_speaker": 25,
    },
    # four flite voices x three pitch/tempo variants, nothing drawn, no channel: the corpus of
    # the sweeps in docs/results.md, reproduced byte for byte
    "flite12": {
        "voices": ["flite/awb", "flite/rms", "flite/slt", "flite/kal16"],
        "speakers_per_voice": 1,
        "variants": [
            {"name": "base", "f0_scale": 1.0, "tempo": 1.0},
            {"name": "high", "f0_scale": 1.25, "tempo": 1.1},
            {"name": "low", "f0_scale": 0.8, "tempo": 0.9},
        ],
        "warp": {"low": 1.0, "high": 1.0},
        "f0_scale": {"low": 1.0, "high": 1.0},
        "tempo": {"low": 1.0, "high": 1.0},
        "prosody": {"stretch": 0.0, "f0_mean": 0.0, "f0_range": 0.0},
        "channel": "off",
        "held_out": {"val": ["awb_low", "slt_high"], "test": ["rms", "rms_high", "rms_low"]},
        "utterances_per_speaker": 80,
    },
}


def merged(base: dict, given: dict) -> dict:
    """`base` with the keys of `given`: a nested mapping merged key by key, the rest replaced."""
    out = dict(base)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def changed(section: S, **changes: object) -> S:
    """`section` with `changes`, validated as params.yaml is; a nested section given as a dict
    changes only the keys it names: `changed(params.model, quantizer={"codebook_size": 8})`.
    (The built-in corpus's section keeps its resolved preset values: change `preset` in the
    mapping that `BuiltinParams.model_validate` reads instead.)"""
    return type(section).model_validate(merged(section.model_dump(), changes))


class BuiltinParams(_Strict):
    """The built-in corpus: a preset, and the keys that override it (docs/corpus.md)."""

    preset: Literal["read", "flite12"]
    voices: list[str] = Field(min_length=1)  # engine/voice; a bare name is a flite voice
    speakers_per_voice: int = Field(gt=0)
    variants: list[Variant]  # every voice x variant (x speakers_per_voice); [] = one each
    warp: Range  # vocal-tract length factor per speaker (resampling; 1 = the voice's own)
    f0_scale: Range  # per speaker
    tempo: Range  # per speaker
    prosody: ProsodyParams  # per utterance
    channel: Literal["off", "mild", "strong"]  # per-utterance microphone EQ, room and noise
    held_out: HeldOutVoices  # the split `features.split` uses when it names no speakers
    utterances_per_speaker: int = Field(gt=0)
    seed: int

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, given: object) -> object:
        if not isinstance(given, dict):
            return given
        name = given.get("preset")
        if name not in BUILTIN_PRESETS:
            return given  # the field's own check names the key and the choices
        return merged(BUILTIN_PRESETS[name], given)

    @model_validator(mode="after")
    def _unique(self) -> BuiltinParams:
        for spec in self.voices:
            check_voice(spec)
        for what, names in (("voices", self.voices), ("variants", [v.name for v in self.variants])):
            if len(set(names)) != len(names):
                raise ValueError(f"duplicate names in {what}: {names}")
        return self


class VctkParams(_Strict):
    url: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int | None
    mic: Literal["mic1", "mic2"]
    archive_dir: str
    alignments: str | None
    speakers: list[str] | None
    retries: int = Field(ge=0)

    @field_validator("speakers")
    @classmethod
    def _nfc(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else [nfc(n) for n in names]

    timeout_s: float = Field(gt=0)


class FolderParams(_Strict):
    audio_dir: str | None
    textgrid_dir: str | None


class DataParams(_Strict):
    corpus: Literal["builtin", "vctk", "folder"]
    on_error: Literal["fail", "skip"]
    # utterances (vctk, folder) with a transcript but no TextGrid: aligned, or bad with `none`
    aligner: Literal["pocketsphinx", "none"]
    duration_tolerance_s: float = Field(ge=0)
    jobs: int = Field(ge=0)
    builtin: BuiltinParams
    vctk: VctkParams
    folder: FolderParams

    @model_validator(mode="after")
    def _corpus_settings(self) -> DataParams:
        if self.corpus == "vctk" and not self.vctk.alignments and self.aligner == "none":
            raise ValueError(
                "data.vctk.alignments must name a folder of MFA TextGrids when data.aligner is none"
            )
        if self.corpus == "folder" and not self.folder.audio_dir:
            raise ValueError("data.folder.audio_dir must name a folder of wav/flac files")
        return self


class SplitParams(_Strict):
    """Held-out speakers; everyone else is `train`. null: the built-in corpus's own
    (`data.builtin.held_out`); any other corpus must name its test speakers."""

    val_speakers: list[str] | None
    test_speakers: list[str] | None

    @field_validator("val_speakers", "test_speakers")
    @classmethod
    def _nfc(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else [nfc(n) for n in names]


class FeaturesParams(_Strict):
    kind: Literal["mfcc39", "logmel", "fbank"]
    n_mels: int | None = Field(gt=0)  # null: the kind's own (features.acoustic.DEFAULT_MELS)
    preemphasis: float = Field(ge=0.0, lt=1.0)
    # per-utterance mean and variance normalization (CMVN) of every dimension, for every system
    normalize: Literal["none", "utterance"]
    trim_silence: bool
    trim_margin_s: float = Field(ge=0.0)
    allow_upsampling: bool
    audio: bool  # keep the int16 samples in the shards (needed by model.decoder: wavenet)
    on_error: Literal["fail", "skip"]
    shard_mb: float = Field(gt=0.0)
    jobs: int = Field(ge=0)
    split: SplitParams

    @model_validator(mode="after")
    def _enough_mels(self) -> FeaturesParams:
        if self.kind == "mfcc39" and self.n_mels is not None and self.n_mels < MFCC_CEPSTRA:
            raise ValueError(
                f"features.n_mels ({self.n_mels}) must be at least {MFCC_CEPSTRA} "
                f"for mfcc39: its {MFCC_CEPSTRA} cepstra are a DCT of the mel "
                "bands"
            )
        return self


class StatsParams(_Strict):
    window_frames: int = Field(gt=0)  # window for distinct phones per window (0.48 s)


class QuantizerParams(_Strict):
    """`model.quantizer`: the keyword arguments of `VectorQuantizer` (besides its `dim`)."""

    kind: Literal["ema", "loss"]  # EMA codebook updates | codebook + commitment loss
    codebook_size: int = Field(ge=2)
    beta: float = Field(ge=0)  # commitment weight
    ema_decay: float = Field(gt=0, lt=1)
    dead_threshold: float = Field(ge=0)  # EMA: restart codes used less often per batch
    kmeans_init: bool  # the codebook starts as k-means of the encoder's first latents
    kmeans_batches: int = Field(gt=0)  # of train.batch_size crops each, for that k-means


class AdversaryParams(_Strict):
    """`model.adversary`: a speaker classifier on the VQ-VAE's latents through a gradient
    reversal (Ganin and Lempitsky 2015): the encoder is pushed to drop what tells the training
    speakers apart. Off at weight 0."""

    weight: float = Field(ge=0)  # the reversed gradient's scale once ramped up (0: no adversary)
    ramp_steps: int = Field(ge=0)  # training steps over which the weight rises linearly from 0
    hidden: int = Field(gt=0)  # the classifier's hidden layer


class WaveNetParams(_Strict):
    """`model.wavenet`: the WaveNet decoder's sizes (`model.decoder: wavenet`)."""

    residual_channels: int = Field(gt=0)
    skip_channels: int = Field(gt=0)
    layers_per_stack: int = Field(gt=0, le=16)  # dilations 1, 2, ..., 2^(n-1)
    stacks: int = Field(gt=0)
    window_latents: int = Field(gt=0)  # 20 ms latents per crop whose samples the loss covers


class CPCParams(_Strict):
    """`model.cpc`: the contrastive objective of `model.family` vqcpc (van Niekerk et al. 2020)
    and cpc (van den Oord et al. 2018)."""

    context_dim: int = Field(gt=0)  # LSTM over the latents, quantized for vqcpc (256 published)
    prediction_steps: int = Field(ge=1)  # future 20 ms latents predicted (6 = 120 ms)
    negatives: int = Field(ge=1)  # per positive, drawn as `negatives_from` says
    # speaker: negatives from the batch's crops of the positive's speaker (the published VQ-CPC);
    # utterance: from the positive's own crop only, so no cue that is constant over an
    # utterance (its channel, its speaker) tells them apart
    negatives_from: Literal["speaker", "utterance"]
    speakers_per_batch: int = Field(ge=1)  # a batch is this many speakers x crops of each
    # ... each of a speaker's crops from another of its utterances (the published S x U batches)
    distinct_utterances: bool
    # the encoder left-padded, so no latent sees input after its own 20 ms and the context at t
    # cannot read the future it predicts; false: the VQ-VAE's centred encoder (12 frames ahead)
    causal: bool


class HubertParams(_Strict):
    """`model.hubert`: masked prediction of k-means classes of the input (`model.family:
    hubert`; vqspeech/model/hubert.py)."""

    labels: int = Field(ge=2)  # k-means classes of the paired MFCC frames predicted (100 published)
    context_dim: int = Field(gt=0)  # bidirectional LSTM, per direction
    mask_share: float = Field(gt=0, le=1)  # of a crop's latents covered by masked spans
    mask_span: int = Field(ge=1)  # latents per masked span (5 = 100 ms)
    # latents: the encoder's outputs replaced before the context (HuBERT); input: the masked
    # latents' input frames replaced before the encoder
    mask_at: Literal["latents", "input"]


class ModelParams(_Strict):
    """`model`: the model's sizes; `build(params.model, input_dim=..., n_speakers=...)`
    (vqspeech.model) makes a VQ-VAE or, with `family: vqcpc`, a VQ-CPC, with `cpc` a CPC, with
    `hubert` a masked predictor of clustered features."""

    # reconstruction | contrastive prediction of codes | of continuous latents, k-means units |
    # masked prediction of k-means classes of the input, k-means units
    family: Literal["vqvae", "vqcpc", "cpc", "hubert"]
    # conv: 12 frames of context either side of each latent; frame: the published VQ-CPC's
    # frame-local encoder (4 frames per latent; vqspeech/model/vqvae.py Encoder)
    encoder: Literal["conv", "frame"]
    channels: int = Field(gt=0)
    res_blocks: int = Field(ge=0)
    embedding_dim: int = Field(gt=0)
    projection_kernel: int = Field(ge=1, le=3)
    jitter: float = Field(ge=0, lt=1)  # training only: a latent may be swapped for a neighbour
    # the encoder output standardized over time (the crop in training, the utterance at encode)
    latent_norm: Literal["none", "sequence"]
    decoder_kernel: int = Field(ge=1, le=7)  # odd: the deconv decoder's convs; 1: least context
    speaker_dim: int = Field(gt=0)
    decoder: Literal["deconv", "wavenet"]
    # what the deconv decoder reconstructs: the input features; the static log mel energies of
    # the same frames (80 bands, from the shards' audio: vqspeech.train.targets); or the
    # input's static third (mfcc39: the 13 cepstra without their deltas)
    target: Literal["input", "logmel", "static"]
    quantizer: QuantizerParams
    wavenet: WaveNetParams
    cpc: CPCParams
    hubert: HubertParams
    adversary: AdversaryParams

    @model_validator(mode="after")
    def _odd_decoder_kernel(self) -> ModelParams:
        if self.decoder_kernel % 2 == 0:
            raise ValueError(
                f"model.decoder_kernel must be odd (1, 3, 5, 7), not {self.decoder_kernel}"
            )
        if self.family in ("vqcpc", "cpc", "hubert") and self.decoder != "deconv":
            raise ValueError(
                f"model.family {self.family} has no decoder: leave model.decoder at deconv "
                "(the default)"
            )
        if self.adversary.weight > 0 and self.family != "vqvae":
            raise ValueError(
                f"model.adversary.weight is {self.adversary.weight}: the speaker adversary is a "
                f"VQ-VAE's (model.family vqvae), not {self.family}'s; set it to 0"
            )
        if self.target != "input" and (self.family != "vqvae" or self.decoder != "deconv"):
            raise ValueError(
                f"model.target {self.target!r} is what the deconv decoder of a VQ-VAE "
                "reconstructs: it needs model.family vqvae and model.decoder deconv "
                f"(not {self.family} / {self.decoder})"
            )
        return self


class TrainParams(_Strict):
    """`train`: what `vqspeech.train.loop.train` takes, as it is."""

    seed: int
    epochs: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    crop_frames: int = Field(ge=2)
    lr: float = Field(gt=0)
    warmup_steps: int = Field(ge=0)  # the learning rate rises linearly over these (0: none)
    # renditions of every train utterance made when training starts (vqspeech.train.views); a
    # crop reads one of them or the original, uniformly; the objective is the original's
    views: int = Field(ge=0)
    view_channel: Literal["off", "mild", "strong"]  # the recording channel drawn for each
    view_warp: float = Field(ge=0, lt=0.5)  # VTLP: the spectrum warped by alpha in 1 +- this
    val_crops: int = Field(gt=0)
    # the train split is read a window of shards at a time, each at most this many MiB of
    # frames in memory (vqspeech.train.stream); a split that fits is one window, the whole split
    buffer_mb: float = Field(gt=0)
    workers: int = Field(ge=0)  # data-loader worker processes (0: read in the training one)
    device: Literal["auto", "cpu", "cuda"]
    threads: int = Field(ge=0)  # torch threads per process; 0 = torch's default
    log_every: int = Field(gt=0)  # steps between dvclive rows
    snapshot_every: int = Field(ge=0)  # epochs between codebook snapshots (0 = final only)


class ABXParams(_Strict):
    max_group: int = Field(ge=2)  # items per (context, speaker, phone), as libri-light
    max_x_across: int = Field(gt=0)  # X speakers per (context, speaker, phone), libri-light
    # the items' frames wait on disk; a block of whole contexts at a time is in memory: its
    # vectors and its same-context DTW distances within this many MiB (vqspeech.evaluate.abx)
    block_mb: float = Field(gt=0)


class ProbeParams(_Strict):
    frames: int = Field(ge=0)  # speech frames per held-out speaker and side (fit, score); 0 off
    fit_share: float = Field(gt=0, lt=1)  # of each speaker's utterances, to fit the probe on


class PlotParams(_Strict):
    utterances: int = Field(ge=1)  # held-out utterances in the comparison plot
    umap_points: int = Field(ge=0)  # latents in the UMAP (a seeded sample); 0: no UMAP
    seconds: float = Field(gt=0)  # of each utterance in the comparison plot

    @field_validator("umap_points")
    @classmethod
    def _enough_points(cls, v: int) -> int:
        if 0 < v < 10:
            raise ValueError("needs at least 10 latents (a UMAP of 10 neighbours), or 0: no UMAP")
        return v


class DPDPParams(_Strict):
    """`eval.dpdp`: duration-penalized re-segmentation of every system's codes (Kamper 2022)."""

    mean_latents: float = Field(ge=0)  # segments' mean length the penalty is set to; 0 off
    max_latents: int = Field(ge=1)  # longest segment (20 ms latents)


class EvalParams(_Strict):
    split: Literal["val", "test"]  # held-out speakers whose codes are scored
    batch_size: int = Field(gt=0)
    boundary_tolerance: int = Field(ge=0)  # latents (20 ms each)
    abx: ABXParams
    dpdp: DPDPParams
    train_latents: int = Field(ge=0)  # train latents align keeps for kmeans_latent; 0 off
    probe: ProbeParams  # linear speaker-ID probe of every continuous representation
    plots: PlotParams


class UnitDecoderParams(_Strict):
    """The unit-to-spectrogram decoder, the same for every system (`synthesis.unit_decoder`)."""

    channels: int = Field(ge=4)
    blocks: int = Field(ge=1)
    steps: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    crop_units: int = Field(ge=4)  # 20 ms codes per training crop
    learning_rate: float = Field(gt=0)


class UnitResynthesisParams(_Strict):
    """Resynthesis of every unit system's codes: decoder -> log-mel -> Griffin-Lim."""

    systems: list[Literal["vqvae", "kmeans_mfcc", "kmeans_latent"]] = Field(min_length=1)
    train_utterances: int = Field(ge=2)  # seeded sample of the train split the decoders learn on
    scored_utterances: int = Field(ge=1)  # held-out utterances resynthesized whole and scored
    decoder: UnitDecoderParams
    griffin_lim_iterations: int = Field(ge=1)
    mel_inverse: Literal["pinv", "nnls", "mu"]
    asr_vocabulary: Literal["corpus", "general"]
    # a model with the WaveNet decoder: its own codes generated whole, one more scored system
    wavenet: bool

    @field_validator("systems")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"names a system twice: {v}")
        return v


class SynthesizeParams(_Strict):
    utterances: int = Field(gt=0)  # held-out (eval.split) utterances to resynthesize
    seconds: float = Field(gt=0)  # generated from the start of each (one sample at a time)
    targets: int = Field(ge=1)  # voice conversions per utterance, to distinct train speakers
    classifier_utterances: int = Field(gt=1)  # per train speaker, for the speaker classifier
    classifier_holdout: float = Field(gt=0, lt=1)  # share kept out to test the classifier
    units: UnitResynthesisParams

    @model_validator(mode="after")
    def _page_within_scored(self) -> SynthesizeParams:
        if self.utterances > self.units.scored_utterances:
            raise ValueError(
                f"utterances ({self.utterances}) are the first of units.scored_utterances "
                f"({self.units.scored_utterances}): it cannot be fewer"
            )
        return self


class Params(_Strict):
    data: DataParams
    features: FeaturesParams
    stats: StatsParams
    model: ModelParams
    train: TrainParams
    eval: EvalParams
    synthesize: SynthesizeParams

    @model_validator(mode="after")
    def _static_target_has_deltas(self) -> Params:
        if self.model.target == "static" and self.features.kind not in ("mfcc39", "fbank"):
            raise ValueError(
                "model.target static rebuilds the static third of features with deltas: it "
                f"needs features.kind mfcc39 or fbank, not {self.features.kind}"
            )
        return self

    @model_validator(mode="after")
    def _views_have_audio_and_an_objective(self) -> Params:
        if self.train.views == 0:
            return self
        if not self.features.audio:
            raise ValueError(
                f"train.views is {self.train.views}: views are made from the shards' audio, "
                "which needs features.audio true"
            )
        if self.model.family not in ("vqvae", "hubert") or self.model.target == "logmel":
            raise ValueError(
                f"train.views is {self.train.views}: views train a VQ-VAE rebuilding its input "
                "or a HuBERT (the original's frames are the objective), not model.family "
                f"{self.model.family} with model.target {self.model.target}"
            )
        return self

    @model_validator(mode="after")
    def _kmeans_has_enough_latents(self) -> Params:
        """The codebook's k-means (a VQ model's first codebook; the units of a CPC or HuBERT,
        fitted when training ends) and HuBERT's label classes cluster the latents of
        `kmeans_batches` batches of crops: fewer latents than classes would fail, the units
        only after the whole run."""
        m, t = self.model, self.train
        latents = m.quantizer.kmeans_batches * t.batch_size * (t.crop_frames // 2)
        fitted = m.quantizer.kmeans_init or m.family in ("cpc", "hubert")
        wanted = [("model.quantizer.codebook_size", m.quantizer.codebook_size)] if fitted else []
        if m.family == "hubert":
            wanted.append(("model.hubert.labels", m.hubert.labels))
        for key, k in wanted:
            if k > latents:
                raise ValueError(
                    f"{key} is {k}, but k-means sees {latents} latents (model.quantizer."
                    f"kmeans_batches x train.batch_size x train.crop_frames / 2): raise "
                    "kmeans_batches or lower it"
                )
        return self

    @model_validator(mode="after")
    def _hubert_span_fits_the_crop(self) -> Params:
        latents = self.train.crop_frames // 2
        if self.model.family == "hubert" and self.model.hubert.mask_span > latents:
            raise ValueError(
                f"model.hubert.mask_span ({self.model.hubert.mask_span}) is longer than a crop's "
                f"{latents} latents (train.crop_frames {self.train.crop_frames}): lower it"
            )
        return self

    @model_validator(mode="after")
    def _cpc_fits_training(self) -> Params:
        if self.model.family not in ("vqcpc", "cpc"):
            return self
        cpc, t = self.model.cpc, self.train
        if t.batch_size % cpc.speakers_per_batch:
            raise ValueError(
                f"train.batch_size ({t.batch_size}) must be a multiple of model.cpc."
                f"speakers_per_batch ({cpc.speakers_per_batch})"
            )
        if t.crop_frames // 2 <= cpc.prediction_steps + 1:
            raise ValueError(
                f"train.crop_frames ({t.crop_frames}) gives {t.crop_frames // 2} "
                f"latents, too few to predict {cpc.prediction_steps} steps ahead: "
                f"raise it to {2 * (cpc.prediction_steps + 2)} or more"
            )
        return self


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(part) for part in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown key")
        elif e["type"] == "missing":
            lines.append(f"{key}: required key is missing")
        else:
            # a section's or the file's own check (a model validator) gets the whole mapping as
            # its input: its message names the keys, a dump of the mapping would bury it
            got = "" if isinstance(e.get("input"), dict) else f" (got {e.get('input')!r})"
            lines.append(f"{key}: {e['msg']}{got}")
    return "\n  ".join(lines)


def parse_params(raw: object, source: str = "params.yaml") -> Params:
    """Validate an already-loaded params mapping."""
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(f"{source}: invalid params:\n  {_format(err)}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (plain YAML keeps the last one
    silently, so a pasted duplicate block would override the first without a word)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 floats, as DVC (ruamel) reads them: `1e-3` is a number there, a string to PyYAML's
# YAML 1.1 rules, and a strict float field would then reject what DVC's `-S` wrote
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def load_params(path: str | os.PathLike[str] = "params.yaml") -> Params:
    """Read and validate `params.yaml`; a duplicated key is an error."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: not found (run from the repository root)") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ParamsError(
            f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset "
            f"{err.start}, line {line}); save it as UTF-8"
        ) from None
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from None
    return parse_params(raw, str(path))
