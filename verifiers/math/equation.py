"""An answer written as a computation, `expression = value` (`\\sqrt{4} = 2`, `\\binom{5}{2} = 10`,
`17 \\bmod 5 = 2`, `e^{i\\pi} = -1`): its value is the last side, when the equation is true.

What it is for: `check` reads such an answer as the value it states. Only an equation whose sides are
all closed-form numbers (no variables) is read this way, and only when every side equals the last one
(a lone decimal side may be the correct rounding of the others, as in `numeric`); a false equation
(`5 = 2`, `\\frac{1}{2} = \\frac{10}{9}`) is unreadable, never its right-hand side.

What it does not do: equations with variables (`x = 5`, `y = 2x + 1`: see `compare`), or time limits
(it runs inside the worker, like the rest of `check`).
"""

from __future__ import annotations

import sympy
from sympy.core.relational import Equality
from sympy.logic.boolalg import BooleanAtom

from verifiers.math.numeric import decimal_matches, scalars_equal
from verifiers.math.parse import Parsed, parse_answer
from verifiers.math.textparse import ParseError

MAX_SIDES = 6
_OPENERS, _CLOSERS = "({[", ")}]"


def stated_value(text: str, parsed: Parsed) -> Parsed:
    """`parsed` itself, or for a true closed-form `expression = value` the Parsed last side."""
    if not _looks_like_closed_equation(parsed.value):
        return parsed
    sides = top_level_sides(text)
    if not 2 <= len(sides) <= MAX_SIDES:
        return parsed
    readings = [parse_answer(side) for side in sides]
    if not all(_is_closed_scalar(r) for r in readings):
        return parsed
    last = readings[-1]
    if not all(_sides_equal(r, last) for r in readings[:-1]):
        raise ParseError(f"a false equation: {text[:80]!r}")
    return last


def top_level_sides(text: str) -> list[str]:
    """`a = b = c` -> ["a", "b", "c"], splitting only at a bare `=` outside brackets (never `<=`, `==`, `\\neq`)."""
    sides, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char in _OPENERS:
            depth += 1
        elif char in _CLOSERS:
            depth -= 1
        elif char == "=" and depth == 0:
            before, after = text[index - 1: index], text[index + 1: index + 2]
            if before in ("<", ">", "!", "=", ":") or after == "=":
                return []
            sides.append(text[start:index].strip())
            start = index + 1
    sides.append(text[start:].strip())
    return sides if all(sides) else []


def _looks_like_closed_equation(value: object) -> bool:
    if isinstance(value, BooleanAtom):  # latex2sympy evaluated `e^{i\pi} = -1` to True
        return True
    equalities = list(value.args) if isinstance(value, sympy.And) else [value]
    return all(isinstance(e, Equality) and not e.free_symbols for e in equalities)


def _is_closed_scalar(reading: Parsed) -> bool:
    value = reading.value
    return (reading.words is None and not reading.percent and isinstance(value, sympy.Expr)
            and not isinstance(value, sympy.Tuple) and not value.free_symbols)


def _sides_equal(side: Parsed, last: Parsed) -> bool:
    if side.decimal is not None:
        return decimal_matches(side.decimal, last.value)
    if last.decimal is not None:
        return decimal_matches(last.decimal, side.value)
    return scalars_equal(side.value, last.value)
