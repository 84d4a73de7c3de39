"""English number words as an answer: "forty-two", "one hundred and five", "\\text{twelve}" -> "42", "105", "12".

What it is for: an answer (or a reference, "Answer is forty two.") that is nothing but a whole number
written in words. `parse` reads it as that number, so "forty two" equals 42 and never equals 43.

What it does not do: numbers inside prose ("five apples and two pears" is no number), fractions or
ordinals ("two thirds", "fifth"), or words that are not whole-number words ("a dozen", "none").
"""

from __future__ import annotations

import re

_UNITS = {word: value for value, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_TENS = {word: 10 * value for value, word in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split())
         if word != "_"}
_SCALES = {"thousand": 10 ** 3, "million": 10 ** 6, "billion": 10 ** 9, "trillion": 10 ** 12}
_WRAPPER = re.compile(r"^\\(?:text|textbf|mathrm|mbox|textrm)\s*\{([^{}]*)\}$")
MAX_WORDS = 12


def number_from_words(text: str) -> int | None:
    """The whole number `text` spells in English words, else None (`"minus five"` -> -5)."""
    wrapped = _WRAPPER.match(text.strip())
    words = (wrapped.group(1) if wrapped else text).strip().rstrip(".").lower().replace("-", " ").split()
    words = [w for w in words if w != "and"]
    if not words or len(words) > MAX_WORDS:
        return None
    sign = -1 if words[0] in ("minus", "negative") else 1
    words = words[1:] if sign == -1 else words
    if not words or not all(w in _UNITS or w in _TENS or w == "hundred" or w in _SCALES for w in words):
        return None
    return _value(words, sign)


def _value(words: list[str], sign: int) -> int | None:
    total, group, last = 0, 0, None
    for word in words:
        if word in _UNITS:
            if last in ("unit",):
                return None  # "five six" is two numbers
            group += _UNITS[word]
            last = "unit"
        elif word in _TENS:
            if last in ("unit", "tens"):
                return None
            group += _TENS[word]
            last = "tens"
        elif word == "hundred":
            if last != "unit" or group >= 100:
                return None
            group *= 100
            last = "hundred"
        else:
            if last is None or last == "scale" or group == 0:
                return None
            total += group * _SCALES[word]
            group, last = 0, "scale"
    return sign * (total + group)
