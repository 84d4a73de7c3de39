"""Clean an extracted answer string before parsing.

What it is for: make equivalent spellings of one answer look alike, as strings: math delimiters,
`\\left`/`\\right`, invisible `\\phantom{...}`, LaTeX spacing, `\\dfrac`/`\\tfrac`, TeX shorthand (`\\frac32`, `\\sqrt2`), degree
signs, dollar signs, upright constants (`\\text{e}`, `\\mathrm{i}` are e and i), trailing units (`5 \\text{ cm}^2`, `12 apples`), thousands separators
(`1,000`, `1{,}000`, `1\\,000`, MATH's `10,\\!000`, `1 000`; plain commas only when the
whole answer is one number, so `(1,100)` stays a pair), `x \\in [a, b]` -> `[a, b]`,
`5 million` -> `5*10^{6}`, `f(x) = ...` and `f^{-1}(x) = ...` -> the right-hand side, `\\bmod` -> `mod` and the percent sign (removed and reported, so that `compare` can
decide what a percentage means). Also recognises plain text answers (multiple-choice letters,
words such as "yes") that must be compared as text, never as products of symbols.

What it does not do: parse (see `parse`) or decide equality (see `compare`). It never removes
anything from the middle of an answer except formatting, so "2 or 3" stays a two-answer string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from verifiers.math.extract import strip_math_delimiters

MATH_WORDS = frozenset({"sqrt", "pi", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp",
                        "or", "and", "inf", "infinity", "oo", "abs"})

NOT_UNITS = frozenset({  # words after a number that change its value, bound it, hedge it or negate it
    "not", "no", "never", "wrong", "incorrect", "false", "is", "are", "was", "isn", "nor", "either", "neither",
    "more", "less", "fewer", "least", "most", "than", "over", "under", "above", "below", "up", "down",
    "approximately", "approx", "about", "roughly", "around", "nearly", "almost", "maybe", "possibly", "probably",
    "plus", "minus", "negative", "hundred", "hundreds", "thousand", "thousands", "million",
    "millions", "billion", "billions", "trillion", "trillions", "dozen", "dozens", "lakh", "crore", "gross", "score",
    "half", "halves", "quarter", "quarters", "third", "thirds", "fourth", "fourths", "fifth", "fifths", "sixths",
    "sevenths", "eighths", "ninths", "tenths", "hundredths", "thousandths", "millionths", "squared", "cubed",
    "factorial", "inverse", "reciprocal", "power", "root", "roots", "basis", "ppm", "ppb",
    "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve", "twenty",
    "hundredth", "thousandth", "th", "st", "nd", "rd", "if", "when", "unless", "except", "otherwise",
})
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")  # only a whole answer: "(1,100)" is a pair
_SPACED_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?")  # "1 000" (a whole answer)
_DIGIT_GROUP_SPACES = re.compile(r"(?<=\d)(?:,\s*\\!\s*|\\,|\{,\}|\\ |\\;|\\:|\\!)(?=\d{3}(?!\d))")
_TUPLE_ASSIGNMENT = re.compile(r"^\(\s*[a-zA-Z](?:_\{?\w+\}?)?(?:\s*,\s*[a-zA-Z](?:_\{?\w+\}?)?)+\s*\)\s*=(?!=)\s*(?=\()")
_NAMED_RATIO = re.compile(r"^[A-Za-z][\w{}]{0,12}\s*:\s*[A-Za-z][\w{}]{0,12}\s*=(?!=)\s*")  # "V_{1}:V_{2}=11:21"
_SET_MEMBERSHIP = re.compile(r"^[a-zA-Z]\s*(?:\\in(?![a-zA-Z])|∈)\s*")
_FUNCTION_DEFINITION = re.compile(  # `f(x) = ...`, `g_1(x, y) = ...`, a named inverse `f^{-1}(x) = ...`
    r"^[a-zA-Z](?:_\{?\w+\}?)?(?:\s*\^\s*(?:\{\s*-\s*1\s*\}|-\s*1))?\s*\(\s*[a-zA-Z](?:\s*,\s*[a-zA-Z])*\s*\)\s*=(?!=)\s*")
_SCALED = re.compile(  # `5 million`, `2.5 \\text{ billion}` -> `5*10^{6}`, `2.5*10^{9}` (a number times its scale word)
    r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:\\text\s*\{\s*)?(thousand|million|billion|trillion)(?:\s*\})?(?![a-zA-Z])")
_SCALE_EXPONENTS = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}
_MOD = re.compile(r"\\(?:bmod|mod)(?![a-zA-Z])")  # `17 \bmod 5`: the remainder, read by `textparse` as `17 mod 5`
_TIME_OF_DAY = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([ap])\.?m\.?)?", re.IGNORECASE)
_SPACING = re.compile(r"(?<!\\)\\[,;:! ]|\\q?quad\b|~|\\displaystyle|\\textstyle|\\mathrm\{\s*\}")
_PHANTOM = re.compile(r"\\[hv]?phantom\s*\{[^{}]*\}")
_LEFT_RIGHT = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])\s*")
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree|\^\s*\{\s*\\text\{\s*o\s*\}\s*\}"
                      r"|\\text\{\s*degrees?\s*\}|\s+degrees?\b")
_PERCENT = re.compile(r"\\%|%|\\text\{\s*percent\s*\}|\s+percent\b")
_DOLLAR = re.compile(r"\\\$|\$|\\text\{\s*dollars?\s*\}")
_FRAC_DIGITS = re.compile(r"\\[dtc]?frac\s*(\d)\s*(\d)")
_FRAC_DIGIT_BRACE = re.compile(r"\\[dtc]?frac\s*(\d)\s*\{")
_FRAC_BRACE_DIGIT = re.compile(r"\\[dtc]?frac\s*(\{[^{}]*\})\s*(\d)")
_FRAC_VARIANTS = re.compile(r"\\[dtc]frac(?![a-zA-Z])")
_SQRT_SHORT = re.compile(r"\\sqrt\s*([0-9a-zA-Z])")
_TRAILING_TEXT_UNIT = re.compile(r"(?<=[\d}).\s])\s*\\(?:text|mbox|mathrm|textrm|textbf|textnormal|textit|mathbf)\{\s*[a-zA-Z][a-zA-Z ./-]*(?:\^\{?\d\}?)?\}"
                                 r"(?:\s*\^\s*\{?\d\}?)?\s*$")
_TRAILING_WORD_UNITS = re.compile(r"(?<=[\d)])\s*((?:\s*[a-zA-Z]{2,}\.?)+)(?:\s*\^\s*\d)?\s*$")
_WRAPPED_NUMBER = re.compile(r"\\(?:text|textbf|textnormal|mathrm|mathbf|mbox)\s*\{([^{}a-zA-Z\\]*)\}")
_UPRIGHT_CONSTANT = re.compile(r"\\(?:text|textrm|mathrm|rm|operatorname)\s*\{\s*([ei])\s*\}")  # upright e, i (ISO)
_ELLIPSIS = re.compile(r"\\(?:l|c|mathellipsis)?dots(?![a-zA-Z])|\.\.\.|…")
_REPEATING = re.compile(r"(\d*)\.(\d*)\\overline\s*\{(\d+)\}")
_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textnormal|textit|mathrm|mathbf|mbox|textrm|operatorname)\s*\{([^{}]*)\}")
_ENDS_WITH_TEXT = re.compile(r"\\(?:text|textbf|textnormal|textit|mathrm|mathbf|mbox|textrm)\s*\{[^{}]*\}\s*$")
_CHOICE_LABEL = re.compile(r"\(?([A-E])(?:\)|\.)\s+(?=\S)")
_CHOICE_LABEL_INSIDE = re.compile(r"(?<![\w\\])\(?[A-E](?![\w])|\b(?:or|and|not)\b", re.IGNORECASE)
_CHOICE_OR_WORDS = re.compile(r"[a-z]+(?: [a-z]+)*")


@dataclass(frozen=True)
class Normalized:
    """An answer string after cleaning, with the percent sign it carried (if any)."""

    text: str
    percent: bool = False
    names: tuple[str, ...] | None = None  # `(y, x) = (1, 2)` -> ("y", "x"); `V_1:V_2 = 11:21` -> (":", "V_1", "V_2")


def normalize_answer(raw: str) -> Normalized:
    """Clean one extracted answer (see module docstring for the list of rewrites)."""
    text = strip_math_delimiters(raw)
    text = re.sub(r"(?<!\\)\\+\s*$", "", text)  # a trailing `\\` or `\\\\` (line break) is not part of the answer
    text = _LEFT_RIGHT.sub("", text)
    text = _PHANTOM.sub("", text)  # invisible: `\\phantom{5}` shows nothing, so it states nothing
    text = _DIGIT_GROUP_SPACES.sub("", text)
    text = _SPACING.sub(" ", text)
    text = fix_tex_shorthand(text)
    text = _MOD.sub(" mod ", text)
    text = _SCALED.sub(lambda m: f"{m.group(1)}*10^{{{_SCALE_EXPONENTS[m.group(2)]}}}", text)
    text = _WRAPPED_NUMBER.sub(r"\1", text)
    text = _UPRIGHT_CONSTANT.sub(r"\1", text)
    text = _REPEATING.sub(_repeating_decimal_as_fraction, text)
    text = _DEGREES.sub("", text)
    text = _ELLIPSIS.sub("D_{dots}", text)  # `1, 2, \\ldots, n`: an opaque item, equal only to another ellipsis
    text = _DOLLAR.sub("", text)
    text, percent = _strip_percent(text)
    text = strip_units(text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"^(?:\\approx|≈)\s*", "", text)
    text = _SET_MEMBERSHIP.sub("", text)
    names = _assigned_names(text)
    text = _TUPLE_ASSIGNMENT.sub("", text)
    text = _NAMED_RATIO.sub("", text)  # "(p, q) = (3, 2)" -> "(3, 2)", the names kept in `names`
    text = _FUNCTION_DEFINITION.sub("", text)
    if _THOUSANDS.fullmatch(text) or _SPACED_THOUSANDS.fullmatch(text):
        text = text.replace(",", "").replace(" ", "")
    return Normalized(text.rstrip(" .").strip(), percent, names)


def _assigned_names(text: str) -> tuple[str, ...] | None:
    """The names a tuple assignment or a named ratio gives its values, without braces and spaces."""
    tuple_names = _TUPLE_ASSIGNMENT.match(text)
    if tuple_names:
        inner = tuple_names.group(0).split("=")[0].strip()[1:-1]
        return tuple(re.sub(r"[{}\s]", "", name) for name in inner.split(","))
    ratio = _NAMED_RATIO.match(text)
    if ratio:
        return (":", *(re.sub(r"[{}\s]", "", name) for name in ratio.group(0).split("=")[0].split(":")))
    return None


def fix_tex_shorthand(text: str) -> str:
    """`\\dfrac`/`\\tfrac` -> `\\frac`; `\\frac32`, `\\frac3{4}`, `\\frac{3}4` -> braces; `\\sqrt2` -> `\\sqrt{2}`."""
    text = _FRAC_VARIANTS.sub(r"\\frac", text)
    text = _FRAC_DIGITS.sub(r"\\frac{\1}{\2}", text)
    text = _FRAC_DIGIT_BRACE.sub(r"\\frac{\1}{", text)
    text = _FRAC_BRACE_DIGIT.sub(r"\\frac\1{\2}", text)
    return _SQRT_SHORT.sub(r"\\sqrt{\1}", text)


def strip_units(text: str) -> str:
    """Drop trailing unit text: `5 \\text{ cm}^2` -> `5`, `12 square units` -> `12`.

    Words that change the value or hedge it are never units: `5 thousand`, `3 dozen`,
    `2 squared`, `5 \\text{ or more}`, `5 \\text{ or six}`, `5 \\text{ is wrong}` stay as they are
    (and then fail to parse), never `5`.
    """
    previous = None
    while previous != text:
        previous = text
        stripped = text
        unit = _TRAILING_TEXT_UNIT.search(stripped)
        if unit and _is_unit(_TEXT_WRAPPER.sub(lambda m: m.group(1), unit.group(0))) \
                and not _ENDS_WITH_TEXT.search(stripped[: unit.start()]):  # `\\text{A}\\text{B}` is text
            stripped = stripped[: unit.start()].strip()
        words = _TRAILING_WORD_UNITS.search(stripped)
        if words and _is_unit(words.group(1)):
            stripped = stripped[: words.start()].strip()
        if stripped:
            text = stripped
    return text


def _is_unit(words: str) -> bool:
    found = set(re.findall(r"[a-z]+", words.lower()))
    return not found & (MATH_WORDS | NOT_UNITS)


def time_of_day(text: str) -> str | None:
    """`1:00`, `12:00 pm` -> "h:mm[:ss][ am|pm]" with the hour's leading zero dropped; else None."""
    match = _TIME_OF_DAY.fullmatch(text.replace("\\text{", "").replace("}", "").strip())
    if not match:
        return None
    hours, minutes, seconds, half = match.groups()
    return f"{int(hours)}:{minutes}" + (f":{seconds}" if seconds else "") + (f" {half.lower()}m" if half else "")


def text_answer(text: str) -> str | None:
    """The lower-case words of a text answer ("(B)", "\\text{yes}", "no solution"), else None.

    Anything with digits, operators or LaTeX commands left after unwrapping `\\text{}` is math;
    letters-only strings are words (so "yes" is never the product y*e*s, and "ab" never equals "ba").
    """
    unwrapped = _TEXT_WRAPPER.sub(lambda m: m.group(1), text).strip()
    choice = re.fullmatch(r"\(?([A-Za-z])\)", unwrapped) or _labelled_choice(unwrapped)
    words = (choice.group(1) if choice else unwrapped).strip(" .").lower()
    if not _CHOICE_OR_WORDS.fullmatch(words):
        return None
    if set(words.split()) & MATH_WORDS and len(words.split()) == 1:
        return None
    if text in ("e", "i"):  # bare lower-case e and i are Euler's number and the imaginary unit
        return None
    return words


def _labelled_choice(text: str) -> re.Match[str] | None:
    """`C. x = 42`, `(B) 12 apples`: a choice letter with its option's text; None when the text
    names a second choice (`C. or D.`)."""
    labelled = _CHOICE_LABEL.match(text)
    if not labelled or _CHOICE_LABEL_INSIDE.search(text, labelled.end()):
        return None
    return labelled


def _repeating_decimal_as_fraction(match: re.Match[str]) -> str:
    """`0.1\\overline{6}` -> `\\frac{15}{90}` (exact)."""
    whole, fixed, repeat = match.group(1) or "0", match.group(2), match.group(3)
    numerator = int(whole + fixed + repeat) - int(whole + fixed)
    denominator = 10 ** len(fixed) * (10 ** len(repeat) - 1)
    return f"\\frac{{{numerator}}}{{{denominator}}}"


def _strip_percent(text: str) -> tuple[str, bool]:
    stripped = _PERCENT.sub("", text)
    return stripped.strip(), stripped != text
