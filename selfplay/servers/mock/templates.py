"""Reply templates of the mock server: capture-group references and a tiny set of computed fields.

What it is for: letting one script rule answer a whole family of prompts. A reply template may contain
  - `{1}`, `{2}`, ... : the text of that capture group of the rule's regex (`{0}`: the whole match);
  - `{name}`          : the text of the named group `(?P<name>...)`;
  - `{op:a,b,...}`    : a number computed from groups, op in add (alias sum), sub, mul, div, min, max,
                        each argument a group reference (`1`, `name`) or a literal number written `=5`.
    Example: rule regex `What is (\\d+) \\+ (\\d+)` and reply `\\boxed{{add:1,2}}` give `\\boxed{12}` for 5 + 7.
A `{...}` that is none of these (e.g. `\\boxed{42}` in a rule whose regex has fewer than 42 groups, or LaTeX
`\\frac{a}{b}`) stays literal text, so replies need no escaping.
What it does NOT do: evaluate expressions. There is no eval; ops are a fixed table of exact arithmetic on
ints and Fractions, and anything else is an error found when the script is loaded.
"""

from __future__ import annotations

import re
from fractions import Fraction

from selfplay.core.errors import UserError

PLACEHOLDER = re.compile(r"\{(\w+)(?::([^{}]*))?\}")


def _div(a, b) -> Fraction:
    if b == 0:
        raise TemplateError("division by zero in {div:...}")
    return Fraction(a) / b


OPS = {
    "add": sum,
    "sum": sum,
    "sub": lambda xs: xs[0] - sum(xs[1:]),
    "mul": lambda xs: _product(xs),
    "div": lambda xs: _fold(_div, xs),
    "min": min,
    "max": max,
}


class TemplateError(UserError, ValueError):
    """A template that cannot be rendered (bad reference, non-numeric group in a computed field)."""


def _product(xs: list) -> Fraction | int:
    out = 1
    for x in xs:
        out *= x
    return out


def _fold(fn, xs: list[Fraction]) -> Fraction:
    out = xs[0]
    for x in xs[1:]:
        out = fn(out, x)
    return out


class Groups:
    """The capture groups a template can reference: positional (from one regex) and named (from all)."""

    def __init__(self, positional: list[str | None], named: dict[str, str | None]):
        self.positional = positional  # index 0 is the whole match
        self.named = named

    @classmethod
    def empty(cls) -> "Groups":
        return cls([], {})

    def has(self, ref: str) -> bool:
        if ref.isdigit():
            return int(ref) < len(self.positional)
        return ref in self.named

    def get(self, ref: str) -> str:
        value = self.positional[int(ref)] if ref.isdigit() else self.named[ref]
        return "" if value is None else value


def check_template(template: str, positional_count: int, names: set[str]) -> None:
    """Raise TemplateError for computed fields that can never render (unknown op, missing group)."""
    shape = Groups([""] * positional_count, {n: "" for n in names})
    for match in PLACEHOLDER.finditer(template):
        name, args = match.group(1), match.group(2)
        if args is None:
            continue  # a plain reference to a missing group is literal text by design
        if name not in OPS:
            raise TemplateError(f"unknown computed field {{{name}:...}}; known: {', '.join(sorted(OPS))}")
        for arg in _split_args(args):
            if not arg.startswith("=") and not shape.has(arg):
                raise TemplateError(f"{{{name}:{args}}} references group {arg!r}, which the rule's regex lacks")
            if arg.startswith("="):
                _number(arg[1:])


def render(template: str, groups: Groups) -> str:
    """Substitute group references and computed fields; leave every other `{...}` as it is."""
    if "{" not in template:
        return template
    return PLACEHOLDER.sub(lambda m: _replacement(m, groups), template)


def _replacement(match: re.Match, groups: Groups) -> str:
    name, args = match.group(1), match.group(2)
    if args is None:
        return groups.get(name) if groups.has(name) else match.group(0)
    if name not in OPS:
        return match.group(0)
    values = [_number(a[1:]) if a.startswith("=") else _number(groups.get(a)) for a in _split_args(args)]
    if not values:
        raise TemplateError(f"{match.group(0)} needs at least one argument")
    return format_number(OPS[name](values))


def _split_args(args: str) -> list[str]:
    return [a.strip() for a in args.split(",") if a.strip()]


def _number(text: str) -> Fraction | int:
    """An int when the text is one (the fast, common case), else an exact Fraction ("3.5", "7/2")."""
    text = text.strip().replace(",", "")
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise TemplateError(f"{text!r} is not a number") from None


def format_number(x: Fraction | int) -> str:
    """Integers as integers, terminating decimals as decimals (3.5), the rest as a fraction (1/3)."""
    if isinstance(x, int):
        return str(x)
    if x.denominator == 1:
        return str(x.numerator)
    d = x.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:
        text = f"{float(x):.12f}".rstrip("0").rstrip(".")
        return text
    return f"{x.numerator}/{x.denominator}"
