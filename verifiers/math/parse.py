"""Turn one extracted answer string into a `Parsed` answer: a sympy value or a text answer.

What it is for: routing (LaTeX goes to `latex2sympy2_extended`, which is an ANTLR parser; plain
text goes to our own `textparse`, falling back to latex2sympy for brace-style text such as
`x^{2}`), `±` expansion, and the clean-up that makes both parsers' outputs comparable:
decimals become exact Rationals, `i` becomes the imaginary unit, a whole number in words is that number. It also records what the
comparer needs to know beyond the value: whether the answer was a lone decimal (and to how many
digits it was stated) and whether it carried a percent sign.

What it does not do: evaluate anything (powers and factorials may stay unevaluated: evaluation
happens in `compare`, inside the time-limited worker), or judge equality. It never calls
`sympify`/`parse_expr`/`eval` on model text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import sympy
from sympy.core.relational import Relational
from latex2sympy2_extended import NormalizationConfig, latex2sympy
from latex2sympy2_extended.latex2sympy2 import ConversionConfig

from verifiers.math.normalize import normalize_answer, text_answer, time_of_day
from verifiers.math.numwords import number_from_words
from verifiers.math.textparse import ParseError, make_interval, parse_text

MAX_ANSWER_CHARS = 1000
_LATEX_NORMALIZATION = NormalizationConfig(basic_latex=True, units=False, malformed_operators=False,
                                           nits=False, boxed="none", equations=False)
_LATEX_CONVERSION = ConversionConfig(lowercase_symbols=False)
_DECIMAL = re.compile(r"[+-]?(\d*)\.(\d+)")
_PLUS_MINUS = re.compile(r"\\pm(?![a-zA-Z])|±|\+-|\+/-")
_MINUS_PLUS = re.compile(r"\\mp(?![a-zA-Z])|∓")
_IMAGINARY = sympy.Symbol("i")
_TEXT_OR = re.compile(r"\\(?:text|mbox|textrm|mathrm)\s*\{\s*or\s*\}")


@dataclass(frozen=True)
class Decimal:
    """A lone decimal answer such as "0.3333": its exact value and half a unit of its last digit."""

    value: sympy.Rational
    half_ulp: sympy.Rational

    def scaled(self, factor: sympy.Rational) -> "Decimal":
        return Decimal(self.value * factor, self.half_ulp * factor)


@dataclass(frozen=True)
class Parsed:
    """One parsed answer: `value` (sympy) for math, `words` for a text answer."""

    source: str
    value: Any = None
    words: str | None = None
    decimal: Decimal | None = None
    percent: bool = False
    names: tuple[str, ...] | None = None  # see `normalize.Normalized.names`


@lru_cache(maxsize=4096)
def parse_answer(raw: str) -> Parsed:
    """Parse one answer string (raises ParseError when it is not a readable answer)."""
    if len(raw) > MAX_ANSWER_CHARS:
        raise ParseError("answer too long")
    normalized = normalize_answer(raw)
    if not normalized.text:
        raise ParseError("empty answer")
    spelled = number_from_words(normalized.text)  # "forty-two" is 42, never the words "forty two"
    if spelled is not None:
        return Parsed(source=normalized.text, value=sympy.Integer(spelled), percent=normalized.percent)
    words = text_answer(normalized.text) or time_of_day(normalized.text)
    if words is not None:
        return Parsed(source=normalized.text, words=words, names=normalized.names)
    chain = ratio_chain(normalized.text)
    if chain is not None:
        return Parsed(source=normalized.text, value=clean_value(chain), names=normalized.names)
    variants = [to_sympy(v) for v in expand_plus_minus(normalized.text)]
    value = variants[0] if len(variants) == 1 else sympy.FiniteSet(*_flatten_sets(variants))
    return Parsed(source=normalized.text, value=clean_value(value),
                  decimal=lone_decimal(normalized.text), percent=normalized.percent, names=normalized.names)


def to_sympy(text: str) -> Any:
    """Parse LaTeX with latex2sympy2_extended, plain text with `textparse` (never with eval).

    Bracketed lists are split here, so that `(3, -4)` is a pair (latex2sympy reads it as the empty
    open interval from 3 to -4, which would equal every other reversed pair).
    """
    bracketed = bracketed_items(text)
    if bracketed is not None:
        opener, items, closer = bracketed
        values = [to_sympy(item) for item in items]
        if opener + closer == "()" or len(values) > 2:
            return sympy.Tuple(*values)
        return make_interval(values, opener, closer)
    inequalities = inequalities_joined_by_or(text)
    if inequalities is not None:
        return inequalities
    if "\\" not in text:
        try:
            return parse_text(text)
        except ParseError:
            pass
        except Exception as exc:  # sympy refusing a construct, e.g. a tuple times a number
            raise ParseError(f"not an answer: {exc.__class__.__name__}") from None
    try:
        return latex2sympy(text, normalization_config=_LATEX_NORMALIZATION, conversion_config=_LATEX_CONVERSION)
    except Exception as exc:
        raise ParseError(f"unreadable LaTeX: {str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__}") \
            from None


def inequalities_joined_by_or(text: str) -> Any:
    """`x < -1 \\text{ or } x > 4` -> Or(x < -1, x > 4) (a union of solution sets); None when `text` is not
    inequalities joined by a `\\text{or}` (`x = 2 \\text{ or } x = 3` stays a list of answers)."""
    parts = _TEXT_OR.split(text)
    if len(parts) < 2 or not all(p.strip() for p in parts):
        return None
    values = [to_sympy(part.strip()) for part in parts]
    if all(isinstance(v, Relational) and not isinstance(v, (sympy.Eq, sympy.Ne)) for v in values):
        return sympy.Or(*values)
    return None


class RatioChain(sympy.Tuple):
    """A ratio of three or more parts, scaled: equal only to another ratio chain, never to a tuple."""


def ratio_chain(text: str) -> sympy.Tuple | None:
    """`1:2:3` (three or more parts) -> the tuple scaled to a first nonzero part of 1, so `2:4:6` equals it
    and `1:6` (a two-part ratio, a number) does not; None when `text` is not such a chain."""
    parts = text.split(":")
    if len(parts) < 3 or not all(p.strip() for p in parts) or re.search(r"[=<>,;{}\[\]]", text):
        return None
    values = [to_sympy(part.strip()) for part in parts]
    scale = next((v for v in values if isinstance(v, sympy.Expr) and v != 0), None)
    if scale is None or not all(isinstance(v, sympy.Expr) for v in values):
        raise ParseError("not a ratio")
    return RatioChain(*(v / scale for v in values))


def bracketed_items(text: str) -> tuple[str, list[str], str] | None:
    """`(a, b]` -> ("(", ["a", "b"], "]") when one bracket pair encloses a top-level comma list."""
    text = text.strip()
    if len(text) < 2 or text[0] not in "([" or text[-1] not in ")]":
        return None
    items, depth, start = [], 0, 1
    for index, char in enumerate(text):
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0 and index != len(text) - 1:
                return None
        elif char == "," and depth == 1:
            items.append(text[start:index])
            start = index + 1
    items.append(text[start:-1])
    return (text[0], items, text[-1]) if len(items) > 1 and all(i.strip() for i in items) else None


def expand_plus_minus(text: str) -> list[str]:
    """`1 \\pm \\sqrt{2}` -> ["1 + \\sqrt{2}", "1 - \\sqrt{2}"]; every ± takes the same sign, ∓ the other."""
    if not _PLUS_MINUS.search(text) and not _MINUS_PLUS.search(text):
        return [text]
    plus = _MINUS_PLUS.sub("-", _PLUS_MINUS.sub("+", text))
    minus = _MINUS_PLUS.sub("+", _PLUS_MINUS.sub("-", text))
    return [plus, minus]


def lone_decimal(text: str) -> Decimal | None:
    """Exact value and stated precision of an answer that is just a decimal number."""
    match = _DECIMAL.fullmatch(text.replace(" ", ""))
    if not match:
        return None
    digits = len(match.group(2))
    value = sympy.Rational(int(match.group(1) or "0") * 10 ** digits + int(match.group(2)), 10 ** digits)
    sign = -1 if text.lstrip().startswith("-") else 1
    return Decimal(sign * value, sympy.Rational(1, 2 * 10 ** digits))


def clean_value(value: Any) -> Any:
    """Decimals (sympy Floats) -> exact Rationals; the symbol `i` -> the imaginary unit."""
    if isinstance(value, sympy.MatrixExpr) and not isinstance(value, sympy.MatrixBase):
        try:  # matrix arithmetic in the answer: 2*M, M + N, M*N
            value = value.doit()
            value = value.as_explicit() if isinstance(value, sympy.MatrixExpr) else value
        except Exception as exc:
            raise ParseError(f"matrix arithmetic: {type(exc).__name__}") from None
    if isinstance(value, sympy.MatrixBase):
        return value.applyfunc(clean_value)
    if not isinstance(value, sympy.Basic):
        raise ParseError(f"unsupported value {type(value).__name__}")
    replacements = {f: sympy.Rational(str(f)) for f in value.atoms(sympy.Float)}
    if value.has(_IMAGINARY):
        replacements[_IMAGINARY] = sympy.I
    return value.xreplace(replacements) if replacements else value


def _flatten_sets(values: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for value in values:
        flat.extend(value.args if isinstance(value, sympy.FiniteSet) else [value])
    return flat
