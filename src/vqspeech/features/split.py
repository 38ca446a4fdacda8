"""Speaker-disjoint splits: held-out speakers are named, everyone else trains."""

from __future__ import annotations

from collections.abc import Iterable

from vqspeech.params import SplitParams

SPLITS = ("train", "val", "test")


class SplitError(ValueError):
    """The held-out speaker lists do not fit the corpus."""


def assign(
    speakers: Iterable[str], val_speakers: list[str], test_speakers: list[str]
) -> dict[str, str]:
    """Map every speaker to `train`, `val` or `test`; a function of the names alone.

    Raises SplitError when no test speaker is named, a held-out speaker is not in the corpus or
    in both lists, or when no speaker is left for training.
    """
    if not test_speakers:
        raise SplitError("features.split.test_speakers is empty: name held-out speakers")
    corpus = set(speakers)
    both = set(val_speakers) & set(test_speakers)
    if both:
        raise SplitError(f"speakers in both val and test: {sorted(both)}")
    unknown = (set(val_speakers) | set(test_speakers)) - corpus
    if unknown:
        raise SplitError(
            f"held-out speakers not in the corpus: {sorted(unknown)} (corpus speakers: "
            f"{sorted(corpus)}); set features.split.val_speakers and test_speakers"
        )
    split = {s: "train" for s in corpus}
    split.update({s: "val" for s in val_speakers})
    split.update({s: "test" for s in test_speakers})
    if "train" not in split.values():
        raise SplitError("every speaker is held out; none is left for training")
    return dict(sorted(split.items()))


def held_out(
    named: SplitParams, corpus_own: tuple[list[str], list[str]] | None
) -> tuple[list[str], list[str]]:
    """(val, test) speakers: those `features.split` names, or where it names none (null), the
    corpus's own (`corpus_own`: the built-in corpus's whole voices, `data.builtin.held_out`)."""
    if named.val_speakers is None and named.test_speakers is None and corpus_own is not None:
        return corpus_own
    return list(named.val_speakers or []), list(named.test_speakers or [])
