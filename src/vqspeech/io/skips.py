"""Bad input, reported: each bad utterance becomes a Skip; `on_error` decides if that is fatal."""

from __future__ import annotations

from dataclasses import dataclass


class BadInputError(ValueError):
    """Bad utterances with `on_error: fail`; the message lists every file and problem."""


@dataclass(frozen=True)
class Skip:
    utterance_id: str
    file: str
    reason: str


def enforce(skipped: list[Skip], on_error: str, key: str, shown: int = 20) -> None:
    """Raise BadInputError listing the skips when `on_error` is `fail` (`key` names the param)."""
    if not skipped or on_error != "fail":
        return
    lines = "\n  ".join(s.reason for s in skipped[:shown])
    more = f"\n  ... and {len(skipped) - shown} more" if len(skipped) > shown else ""
    raise BadInputError(
        f"{len(skipped)} bad utterance(s) (set {key}: skip to skip and report them):"
        f"\n  {lines}{more}"
    )
