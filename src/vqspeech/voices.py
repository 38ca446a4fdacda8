"""The voices of the built-in corpus's engines, and how params name them (`engine/voice`).

No heavy imports: `vqspeech.params` checks the voices of params.yaml with `check_voice`.
"""

from __future__ import annotations

ENGINES = ("flite", "festival", "espeak")

# Median f0 (Hz) of each flite 2.2 voice, measured with librosa.pyin on its default settings;
# flite's `int_f0_target_mean` is absolute, so an f0 scale multiplies these.
FLITE_F0_HZ: dict[str, float] = {"awb": 131.0, "rms": 98.0, "slt": 171.0, "kal16": 90.0}
# Festival's diphone voices: their own `int_lr_params` targets (festvox/<voice>.scm), which an
# f0 scale and range multiply. The HTS voice takes a speaking rate only (hts_engine's -r): its f0
# moves with the speaker's vocal-tract warp.
FESTIVAL_F0: dict[str, tuple[float, float]] = {
    "kal_diphone": (105.0, 14.0),
    "ked_diphone": (105.0, 15.0),
}
FESTIVAL_HTS = ("cmu_us_slt_arctic_hts",)
FESTIVAL_VOICES = (*FESTIVAL_F0, *FESTIVAL_HTS)
# espeak-ng voices as espeak_SetVoiceByName takes them (`en` is British English); a `+variant`
# (f1..f5, m1..m7) changes the voice's formants and pitch.
ESPEAK_LANGUAGES = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
ESPEAK_VARIANTS = (*(f"f{i}" for i in range(1, 6)), *(f"m{i}" for i in range(1, 8)))


def check_voice(spec: str) -> tuple[str, str]:
    """`engine/voice` (or a bare flite voice) -> (engine, voice), or ValueError naming why not."""
    engine, sep, voice = spec.partition("/")
    if not sep and spec in FLITE_F0_HZ:  # the flite-only corpus named its voices bare
        engine, sep, voice = "flite", "/", spec
    if not sep or engine not in ENGINES:
        raise ValueError(f"voice {spec!r} is not <engine>/<voice> with engine in {ENGINES}")
    if engine == "flite" and voice not in FLITE_F0_HZ:
        raise ValueError(f"{spec!r}: flite voices are {sorted(FLITE_F0_HZ)}")
    if engine == "festival" and voice not in FESTIVAL_VOICES:
        raise ValueError(f"{spec!r}: Festival voices are {list(FESTIVAL_VOICES)}")
    if engine == "espeak":
        language, _, variant = voice.partition("+")
        if language not in ESPEAK_LANGUAGES or (variant and variant not in ESPEAK_VARIANTS):
            raise ValueError(
                f"{spec!r}: espeak-ng voices are <language>[+<variant>] with "
                f"language in {ESPEAK_LANGUAGES}, variant in {ESPEAK_VARIANTS}"
            )
    return engine, voice
