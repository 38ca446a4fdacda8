"""A deterministic generator of English sentences for the built-in corpus.

A small phrase grammar over hand-picked word banks. The banks lean on words that carry the rarer
ARPAbet phones (ZH, OY, UH, TH, DH, NG, CH, JH, AW) so that a one-hour corpus covers all 39 phones
many times; the test suite measures that coverage on synthesized audio.
"""

from __future__ import annotations

import numpy as np

_ADJECTIVES = (
    "beige",
    "brown",
    "loud",
    "young",
    "thick",
    "thin",
    "smooth",
    "cheap",
    "huge",
    "usual",
    "joyful",
    "loyal",
    "good",
    "wooden",
    "woolen",
    "yellow",
    "orange",
    "shiny",
    "strong",
    "quiet",
    "heavy",
    "pleasant",
    "rough",
    "gentle",
    "cozy",
    "sharp",
    "vivid",
    "foggy",
    "noisy",
    "gloomy",
    "cloudy",
    "proud",
    "fresh",
    "bright",
    "tough",
    "hungry",
    "curious",
    "awkward",
    "giant",
    "lazy",
)
_NOUNS = (
    "boy",
    "toy",
    "coin",
    "voice",
    "oyster",
    "book",
    "cook",
    "foot",
    "hook",
    "sugar",
    "thumb",
    "tooth",
    "path",
    "mouth",
    "feather",
    "mother",
    "father",
    "garage",
    "treasure",
    "vision",
    "measure",
    "television",
    "decision",
    "king",
    "ring",
    "song",
    "wing",
    "chair",
    "cheese",
    "church",
    "judge",
    "jacket",
    "bridge",
    "fish",
    "shell",
    "shadow",
    "house",
    "mouse",
    "cloud",
    "town",
    "owl",
    "cow",
    "village",
    "engine",
    "pigeon",
    "kitchen",
    "window",
    "valley",
    "zebra",
    "puzzle",
    "lemon",
    "apple",
    "ocean",
    "river",
    "basket",
    "rabbit",
    "tiger",
    "dragon",
    "engineer",
    "author",
)
_VERBS_PAST = (
    "measured",
    "enjoyed",
    "pushed",
    "pulled",
    "watched",
    "touched",
    "chose",
    "judged",
    "found",
    "brought",
    "thought about",
    "bought",
    "showed",
    "washed",
    "painted",
    "noticed",
    "avoided",
    "joined",
    "pointed at",
    "carried",
    "followed",
    "borrowed",
    "gathered",
    "shook",
    "took",
    "cooked",
    "played with",
    "sang about",
    "drew",
    "threw",
    "caught",
    "fixed",
    "hugged",
    "loved",
)
_VERBS_BASE = (
    "measure",
    "enjoy",
    "push",
    "pull",
    "watch",
    "touch",
    "choose",
    "judge",
    "find",
    "bring",
    "show",
    "wash",
    "paint",
    "notice",
    "avoid",
    "join",
    "carry",
    "follow",
    "borrow",
    "gather",
    "shake",
    "cook",
    "draw",
    "throw",
    "catch",
    "fix",
    "hug",
    "weigh",
    "sketch",
    "polish",
)
_ADVERBS = (
    "usually",
    "gently",
    "quickly",
    "loudly",
    "quietly",
    "thoroughly",
    "eagerly",
    "joyfully",
    "rather",
    "nearly",
    "truly",
    "oddly",
    "smoothly",
    "roughly",
    "happily",
    "boldly",
)
_PREPOSITIONS = (
    "near",
    "under",
    "beside",
    "through",
    "behind",
    "above",
    "toward",
    "with",
    "without",
    "along",
    "around",
    "inside",
    "beyond",
    "against",
    "among",
)
_DETERMINERS = ("the", "a", "this", "that", "every", "my", "your", "our", "their", "one")
_PLURAL_DETERMINERS = ("the", "these", "those", "some", "many", "three", "seven", "both")
_TIMES = (
    "this morning",
    "every evening",
    "last month",
    "on thursday",
    "at noon",
    "in the autumn",
    "all through the year",
    "at the weekend",
    "yesterday",
    "for a while",
    "in june",
    "at dawn",
)
_AUXILIARIES = ("will", "should", "could", "might", "would", "can", "must")
_NAMES = ("the engineer", "the author", "my brother", "the judge", "our neighbour", "the teacher")


def _noun_phrase(rng: np.random.Generator) -> str:
    if rng.random() < 0.2:
        det = rng.choice(_PLURAL_DETERMINERS)
        noun = rng.choice(_NOUNS)
        noun = _plural(noun)
    else:
        det = rng.choice(_DETERMINERS)
        noun = rng.choice(_NOUNS)
    if rng.random() < 0.6:
        adj = rng.choice(_ADJECTIVES)
        if det == "a" and adj[0] in "aeiou":
            det = "an"
        return f"{det} {adj} {noun}"
    if det == "a" and noun[0] in "aeiou":
        det = "an"
    return f"{det} {noun}"


def _plural(noun: str) -> str:
    irregular = {"mouse": "mice", "foot": "feet", "tooth": "teeth", "fish": "fish", "man": "men"}
    if noun in irregular:
        return irregular[noun]
    if noun.endswith(("s", "sh", "ch", "x", "z")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def _declarative(rng: np.random.Generator) -> str:
    s = f"{_noun_phrase(rng)} {rng.choice(_VERBS_PAST)} {_noun_phrase(rng)}"
    if rng.random() < 0.5:
        s += f" {rng.choice(_PREPOSITIONS)} {_noun_phrase(rng)}"
    if rng.random() < 0.3:
        s += f" {rng.choice(_TIMES)}"
    return s + "."


def _modal(rng: np.random.Generator) -> str:
    s = f"{rng.choice(_NAMES)} {rng.choice(_AUXILIARIES)} {rng.choice(_ADVERBS)} "
    s += f"{rng.choice(_VERBS_BASE)} {_noun_phrase(rng)}"
    if rng.random() < 0.5:
        s += f" {rng.choice(_TIMES)}"
    return s + "."


def _question(rng: np.random.Generator) -> str:
    s = f"did {_noun_phrase(rng)} {rng.choice(_VERBS_BASE)} {_noun_phrase(rng)}"
    if rng.random() < 0.5:
        s += f" {rng.choice(_PREPOSITIONS)} {_noun_phrase(rng)}"
    return s + "?"


def _compound(rng: np.random.Generator) -> str:
    first = _declarative(rng)[:-1]
    joiner = rng.choice(("and", "but", "although", "because", "while"))
    return f"{first}, {joiner} {_declarative(rng)}"


_FORMS = (_declarative, _modal, _question, _compound)
_FORM_WEIGHTS = (0.4, 0.25, 0.15, 0.2)


def sentence(rng: np.random.Generator) -> str:
    """One sentence drawn from the grammar, first letter capitalized."""
    form = _FORMS[rng.choice(len(_FORMS), p=_FORM_WEIGHTS)]
    text = form(rng)
    return text[0].upper() + text[1:]


def sentence_for(seed: int, speaker_index: int, utterance_index: int) -> str:
    """The sentence of one utterance: a function of the three integers only (order-free)."""
    return sentence(np.random.default_rng([seed, speaker_index, utterance_index]))
