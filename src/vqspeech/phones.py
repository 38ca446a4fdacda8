"""The phone inventory: stress-free ARPAbet (39 phones) plus the silence labels MFA writes.

Every corpus is read into this one label set, so later stages never see corpus-specific spellings.
"""

from __future__ import annotations

import re

ARPABET: tuple[str, ...] = (
    "AA",
    "AE",
    "AH",
    "AO",
    "AW",
    "AY",
    "B",
    "CH",
    "D",
    "DH",
    "EH",
    "ER",
    "EY",
    "F",
    "G",
    "HH",
    "IH",
    "IY",
    "JH",
    "K",
    "L",
    "M",
    "N",
    "NG",
    "OW",
    "OY",
    "P",
    "R",
    "S",
    "SH",
    "T",
    "TH",
    "UH",
    "UW",
    "V",
    "W",
    "Y",
    "Z",
    "ZH",
)
SILENCES: tuple[str, ...] = ("sil", "sp", "spn")
INVENTORY: frozenset[str] = frozenset(ARPABET + SILENCES)

# flite's US lexicon, and Festival's US voices (the same `radio` phone set), write the unstressed
# schwa as `ax` (CMUdict's AH0) and pauses as `pau`; every other name is ARPAbet in lower case.
FLITE_TO_ARPABET: dict[str, str] = {"ax": "AH", "pau": "sil"}

# espeak-ng's English phoneme names (Kirshenbaum-like, its phsource/ph_english*) in the English
# voices the built-in corpus uses, to ARPAbet as CMUdict would transcribe the same words. Where
# one espeak phoneme is two CMUdict phones (the r-coloured and centring diphthongs, syllabic l),
# its interval is split between them (`split_interval`). Accent vowels fold onto the nearest
# General American phone: RP's LOT `0` is AA, the BATH vowel `aa` is AE, as CMUdict has them.
ESPEAK_TO_ARPABET: dict[str, tuple[str, ...]] = {
    "@": ("AH",),
    "@2": ("AH",),
    "a#": ("AH",),
    "V": ("AH",),
    "@L": ("AH", "L"),
    "3": ("ER",),
    "3:": ("ER",),
    "VR": ("ER",),
    "a": ("AE",),
    "aa": ("AE",),
    "A:": ("AA",),
    "0": ("AA",),
    "A@": ("AA", "R"),
    "aI": ("AY",),
    "aI2": ("AY",),
    "aI@": ("AY", "AH"),
    "aU": ("AW",),
    "E": ("EH",),
    "e@": ("EH", "R"),
    "eI": ("EY",),
    "I": ("IH",),
    "I#": ("IH",),
    "I2": ("IH",),
    "i": ("IY",),
    "i:": ("IY",),
    "i@": ("IY", "AH"),
    "i@3": ("IH", "R"),
    "O:": ("AO",),
    "O2": ("AO",),
    "O@": ("AO", "R"),
    "o@": ("AO", "R"),
    "OI": ("OY",),
    "oU": ("OW",),
    "U": ("UH",),
    "U@": ("UH", "R"),
    "u:": ("UW",),
    "D": ("DH",),
    "T": ("TH",),
    "N": ("NG",),
    "S": ("SH",),
    "Z": ("ZH",),
    "tS": ("CH",),
    "dZ": ("JH",),
    "j": ("Y",),
    ";": ("Y",),
    "h": ("HH",),
    "r": ("R",),
    "r-": ("R",),
    "t#": ("T",),
    "t2": ("T",),
    "t[": ("T",),
    "w#": ("W",),
    "_": ("sil",),
    "_:": ("sil",),
    "_!": ("sil",),
    **{
        c: (c.upper(),)
        for c in ("b", "d", "f", "g", "k", "l", "m", "n", "p", "s", "t", "v", "w", "z")
    },
}

_STRESS = re.compile(r"[012]$")


class UnknownPhoneError(ValueError):
    """A label that is neither ARPAbet nor one of the silence labels."""


def normalize(label: str) -> str:
    """Map one aligner label to the inventory: strip stress digits, upper-case phones.

    MFA writes silence as an empty interval (2.x) or as `sil`/`sp`/`spn` (1.x); both become
    silence labels. Raises UnknownPhoneError for anything else.
    """
    text = label.strip()
    if text == "":
        return "sil"
    if text.lower() in SILENCES:
        return text.lower()
    phone = _STRESS.sub("", text).upper()
    if phone not in INVENTORY:
        raise UnknownPhoneError(f"unknown phone label {label!r}")
    return phone


def from_flite(label: str) -> str:
    """Map one flite (or Festival US voice) segment name to the inventory."""
    mapped = FLITE_TO_ARPABET.get(label, label.upper())
    if mapped not in INVENTORY:
        raise UnknownPhoneError(f"unknown flite phone {label!r}")
    return mapped


def from_espeak(label: str) -> tuple[str, ...]:
    """Map one espeak-ng English phoneme name to one or two inventory phones."""
    try:
        return ESPEAK_TO_ARPABET[label]
    except KeyError:
        raise UnknownPhoneError(f"unknown espeak-ng phoneme {label!r}") from None
