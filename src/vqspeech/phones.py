"""The phone inventory: stress-free ARPAbet (39 phones) plus the silence labels MFA writes.

Every corpus is read into this one label set, so later stages never see corpus-specific spellings.
"""

from __future__ import annotations

import re

ARPABET: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T",
    "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip
SILENCES: tuple[str, ...] = ("sil", "sp", "spn")
INVENTORY: frozenset[str] = frozenset(ARPABET + SILENCES)

# flite's US lexicon writes the unstressed schwa as `ax` (CMUdict's AH0) and pauses as `pau`.
FLITE_TO_ARPABET: dict[str, str] = {"ax": "AH", "pau": "sil"}

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
    """Map one flite segment name (`-psdur` output) to the inventory."""
    mapped = FLITE_TO_ARPABET.get(label, label.upper())
    if mapped not in INVENTORY:
        raise UnknownPhoneError(f"unknown flite phone {label!r}")
    return mapped
