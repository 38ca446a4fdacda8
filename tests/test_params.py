import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from vqspeech.params import (
    BuiltinParams,
    Params,
    ParamsError,
    PlotParams,
    QuantizerParams,
    Variant,
    load_params,
    parse_params,
)

from .conftest import REPO


def default_raw() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_committed_params_load():
    params = load_params(REPO / "params.yaml")
    assert params.data.corpus == "builtin"
    b = params.data.builtin
    assert b.preset == "read" and len(b.voices) >= 12 and b.speakers_per_voice > 1
    assert {v.split("/")[0] for v in b.voices} == {"flite", "festival", "espeak"}
    assert params.features.split.test_speakers is None  # the corpus's own held-out voices


def test_unknown_key_is_named():
    raw = default_raw()
    raw["data"]["builtin"]["voicez"] = ["awb"]
    with pytest.raises(ParamsError, match=r"data\.builtin\.voicez: unknown key"):
        parse_params(raw)


def test_unknown_section_is_named():
    raw = default_raw()
    raw["trian"] = {"seed": 1}
    with pytest.raises(ParamsError, match=r"trian: unknown key"):
        parse_params(raw)


def test_mistyped_value_is_named():
    raw = default_raw()
    raw["data"]["builtin"]["utterances_per_speaker"] = "many"
    with pytest.raises(ParamsError, match=r"data\.builtin\.utterances_per_speaker: .*'many'"):
        parse_params(raw)


def test_missing_required_key_is_named():
    raw = default_raw()
    del raw["data"]["corpus"]
    with pytest.raises(ParamsError, match=r"data\.corpus: required key is missing"):
        parse_params(raw)


def test_bad_choice_is_named():
    raw = default_raw()
    raw["data"]["on_error"] = "ignore"
    with pytest.raises(ParamsError, match=r"data\.on_error"):
        parse_params(raw)


def test_corpus_needs_its_settings():
    raw = default_raw()
    raw["data"]["corpus"] = "vctk"
    assert parse_params(raw).data.aligner == "pocketsphinx"  # aligned from the transcripts
    raw["data"]["aligner"] = "none"
    with pytest.raises(ParamsError, match=r"data\.vctk\.alignments"):
        parse_params(raw)


def test_unreadable_file(tmp_path: Path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "params.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ParamsError, match=r"bad\.yaml: not valid YAML"):
        load_params(bad)


def test_a_key_given_twice_is_an_error_not_a_silent_override(tmp_path: Path):
    text = (REPO / "params.yaml").read_text()
    assert "\neval:\n" in text and "\n  batch_size: 32" in text.split("\neval:\n")[1]
    text = text.replace("\neval:\n", "\neval:\n  batch_size: 64\n")  # a second eval.batch_size
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(
        ParamsError, match=r"params\.yaml: not valid YAML.*duplicate key 'batch_size'"
    ):
        load_params(path)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("train", "epochs", True),  # was coerced to 1
        ("train", "epochs", "3"),  # was coerced to 3
        ("features", "trim_silence", "yes"),  # would be coerced to True
        ("train", "epochs", 2.0),
        ("model", "jitter", False),
        ("data", "on_error", 1),
    ],
)
def test_wrong_types_are_errors_naming_the_key(section: str, key: str, value: object):
    raw = default_raw()
    raw[section][key] = value
    with pytest.raises(ParamsError, match=rf"{section}\.{key}: .*\(got {value!r}\)"):
        parse_params(raw)


def test_integers_count_as_floats_and_yaml_1_2_floats_are_numbers(tmp_path: Path):
    text = (REPO / "params.yaml").read_text()
    text = text.replace("lr: 2.0e-4", "lr: 1e-3").replace("beta: 0.25", "beta: 1")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    params = load_params(path)
    assert params.train.lr == 0.001  # DVC (YAML 1.2) reads 1e-3 as a number; so do we
    assert params.model.quantizer.beta == 1.0
    path.write_text(text.replace("lr: 1e-3", "lr: '1e-3'"))  # quoted: a string, an error
    with pytest.raises(ParamsError, match=r"train\.lr: .*\(got '1e-3'\)"):
        load_params(path)


@pytest.mark.parametrize(("points", "ok"), [(0, True), (5, False), (10, True)])
def test_umap_points_is_0_for_no_umap_or_at_least_10(points: int, ok: bool):
    raw = default_raw()
    raw["eval"]["plots"]["umap_points"] = points
    if ok:
        assert parse_params(raw).eval.plots.umap_points == points
    else:
        with pytest.raises(ParamsError, match=r"eval\.plots\.umap_points: .*or 0: no UMAP"):
            parse_params(raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "pattern"),
    [
        ("synthesize", "seconds", float("inf"), r"synthesize\.seconds: Input should be a finite"),
        ("train", "lr", float("nan"), r"train\.lr: Input should be a finite"),
        ("data", "duration_tolerance_s", float("inf"), r"data\.duration_tolerance_s: .*finite"),
    ],
)
def test_inf_and_nan_are_no_values(section: str, key: str, value: float, pattern: str):
    raw = default_raw()
    raw[section][key] = value
    with pytest.raises(ParamsError, match=pattern):
        parse_params(raw)


def test_mfcc39_needs_13_mel_bands():
    raw = default_raw()
    raw["features"]["n_mels"] = 12
    with pytest.raises(
        ParamsError, match=r"features\.n_mels \(12\) must be at least 13 for mfcc39"
    ):
        parse_params(raw)
    raw["features"]["n_mels"] = 13
    assert parse_params(raw).features.n_mels == 13
    raw["features"].update(kind="fbank", n_mels=8)  # a filterbank of 8 bands is fine
    assert parse_params(raw).features.n_mels == 8


def test_params_file_that_is_not_utf8_says_where(tmp_path: Path):
    text = (REPO / "params.yaml").read_text(encoding="utf-8")
    path = tmp_path / "params.yaml"
    path.write_bytes(text.replace("seed: 0", "seed: 0  # Jos\xe9", 1).encode("latin-1"))
    line = text[: text.index("seed: 0")].count("\n") + 1
    with pytest.raises(
        ParamsError,
        match=rf"params\.yaml: not UTF-8 text \(byte 0xe9 at offset "
        rf"\d+, line {line}\); save it as UTF-8",
    ):
        load_params(path)


def test_speaker_names_are_compared_in_nfc():
    """Held-out names typed in NFD (as copied from a macOS folder name) match the NFC corpus."""
    import unicodedata

    raw = default_raw()
    raw["features"]["split"] = {
        "val_speakers": [],
        "test_speakers": [unicodedata.normalize("NFD", "José")],
    }
    assert parse_params(raw).features.split.test_speakers == ["José"]
    assert unicodedata.is_normalized("NFC", parse_params(raw).features.split.test_speakers[0])


def _sections(model: type[BaseModel]) -> Iterator[type[BaseModel]]:
    """`model` and every params class inside it (fields, list items, unions)."""
    yield model
    for f in model.model_fields.values():
        for t in (f.annotation, *typing.get_args(f.annotation)):
            for inner in (t, *typing.get_args(t)):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    yield from _sections(inner)


def test_params_yaml_is_the_one_source_of_every_value():
    """No params class defaults a field: params.yaml sets each value once (a class default beside
    it would be a second source that can disagree, as `features.shard_mb` did)."""
    classes = set(_sections(Params))
    assert {QuantizerParams, BuiltinParams, Variant, PlotParams} <= classes  # the walk is deep
    defaulted = [
        f"{cls.__name__}.{name}"
        for cls in classes
        for name, f in cls.model_fields.items()
        if not f.is_required()
    ]
    assert defaulted == []


def test_a_key_missing_from_params_yaml_is_named():
    raw = default_raw()
    del raw["features"]["shard_mb"]
    with pytest.raises(ParamsError, match=r"features\.shard_mb: required key is missing"):
        parse_params(raw)


def test_a_static_target_needs_features_with_deltas():
    raw = default_raw()
    raw["model"]["target"] = "static"
    assert parse_params(raw).model.target == "static"
    raw["features"]["kind"] = "logmel"
    with pytest.raises(ParamsError, match=r"model\.target static .* needs features\.kind mfcc39"):
        parse_params(raw)


def test_unit_resynthesis_params_name_their_errors():
    raw = default_raw()
    raw["synthesize"]["units"]["systems"] = ["vqvae", "vqvae"]
    with pytest.raises(ParamsError, match=r"synthesize\.units\.systems: .*names a system twice"):
        parse_params(raw)
    raw = default_raw()
    raw["synthesize"]["units"]["systems"] = ["wavenet"]
    with pytest.raises(ParamsError, match=r"synthesize\.units\.systems\.0"):
        parse_params(raw)
    raw = default_raw()
    raw["synthesize"]["units"]["scored_utterances"] = 4
    raw["synthesize"]["utterances"] = 5
    with pytest.raises(ParamsError, match=r"synthesize: .*utterances \(5\) are the first of"):
        parse_params(raw)
