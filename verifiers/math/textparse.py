"""A safe parser for plain-text math answers ("3/4", "2 sqrt(3)", "x^2 - 1", "(-oo, 2]", "x = 2 or x = 3").

What it is for: turning model text into sympy objects without ever evaluating it as Python.
A regex tokenizer feeds a small recursive-descent parser that calls sympy constructors directly;
`eval`, `sympify` and `parse_expr` are never called on the input. Decimals become exact
`Rational`s (so "0.1" is exactly 1/10); powers and factorials stay unevaluated (so parsing a
power tower is cheap: evaluating it later runs under the worker's hard time limit).

Conventions: `i` is the imaginary unit, `e` is Euler's number, `pi`/`π`, `oo`/`inf`/`∞` are what
they look like; multi-letter names that are not known functions split into single-letter symbols
("ab" = a*b); `(a, b)` is a Tuple (the comparer also accepts it as an open interval);
`[a, b]`, `[a, b)`, `(a, b]` are intervals; `{...}` is a set; "," "or" ";" separate answers;
`a mod b` is the remainder.

What it does not do: LaTeX (that is `latex2sympy2_extended`'s job, see `parse`), `±` (expanded
by `parse` before parsing), units or percent signs (removed by `normalize`).
"""

from __future__ import annotations

import re

import sympy
from sympy import Abs, And, E, Eq, FiniteSet, I, Interval, Or, Rational, Symbol, Tuple, Union, oo, pi

MAX_TOKENS = 400
MAX_DEPTH = 50

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+(?![a-zA-Z]))?|\.\d+)"
    r"|(?P<name>[a-zA-Z]+)"
    r"|(?P<op>\*\*|<=|>=|!=|==|=<|=>|[-+*/^=<>!(),\[\]{}|;πθ∞√≤≥≠×·÷−∪]))"
)
_CONSTANTS = {"pi": pi, "π": pi, "e": E, "i": I, "oo": oo, "inf": oo, "infinity": oo, "∞": oo}
_FUNCTIONS = {
    "sqrt": sympy.sqrt, "cbrt": sympy.cbrt, "exp": sympy.exp, "ln": sympy.log, "log": sympy.log,
    "abs": Abs, "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "cot": sympy.cot, "sec": sympy.sec,
    "csc": sympy.csc, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan, "asin": sympy.asin,
    "acos": sympy.acos, "atan": sympy.atan, "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh,
}
_SEPARATORS = {",", ";", "or", "and"}
_RELATIONS = {"=": Eq, "==": Eq, "<": sympy.Lt, ">": sympy.Gt, "<=": sympy.Le, "=<": sympy.Le, "≤": sympy.Le,
              ">=": sympy.Ge, "=>": sympy.Ge, "≥": sympy.Ge, "!=": sympy.Ne, "≠": sympy.Ne}
_KNOWN_WORDS = sorted([*_CONSTANTS, *_FUNCTIONS, "or", "and", "mod"], key=len, reverse=True)


class ParseError(ValueError):
    """The text is not a math answer this parser understands."""


class AnswerList(Tuple):
    """A bare list of answers with a repeated item (`1, 1, 2`), kept with its multiplicity; a list
    without repeats is a `FiniteSet`. The comparer treats it as order-free and one-to-one."""


def answer_list(items: list[sympy.Basic]) -> sympy.Basic:
    try:
        repeated = len(set(items)) < len(items)
    except TypeError:  # an unhashable item
        repeated = False
    return AnswerList(*items) if repeated else FiniteSet(*items)


def parse_text(text: str) -> sympy.Basic:
    """Parse a plain-text answer into a sympy object (raises ParseError)."""
    parser = _Parser(tokenize(text))
    value = parser.answers()
    if not parser.at_end():
        raise ParseError(f"unexpected {parser.peek()!r}")
    return value


def tokenize(text: str) -> list[str]:
    """Split text into number, name and operator tokens; names split into known words and letters."""
    tokens: list[str] = []
    pos = 0
    text = text.replace("−", "-").rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise ParseError(f"cannot read {text[pos:pos + 10]!r}")
        pos = match.end()
        if match.group("name"):
            tokens.extend(_split_name(match.group("name")))
        else:
            tokens.append(match.group("num") or match.group("op"))
        if len(tokens) > MAX_TOKENS:
            raise ParseError("answer too long")
        if len(tokens) > 1 and _is_number_token(tokens[-1]) and _is_number_token(tokens[-2]):
            raise ParseError("two numbers side by side")  # "1 000" is never 1*000
    return tokens


def _is_number_token(token: str) -> bool:
    return token[0].isdigit() or (token[0] == "." and len(token) > 1)


def _split_name(name: str) -> list[str]:
    lowered = name.lower()
    if lowered in _CONSTANTS or lowered in _FUNCTIONS or lowered in _SEPARATORS or lowered == "mod":
        return [lowered]
    parts, i = [], 0
    while i < len(name):
        word = next((w for w in _KNOWN_WORDS if len(w) > 1 and lowered.startswith(w, i)), None)
        parts.append(word or name[i])
        i += len(word) if word else 1
    return parts


def _number(token: str) -> sympy.Rational:
    mantissa, _, exponent = token.lower().partition("e")
    whole, _, fraction = mantissa.partition(".")
    value = Rational(int(whole or "0") * 10 ** len(fraction) + int(fraction or "0"), 10 ** len(fraction))
    return value * Rational(10) ** int(exponent) if exponent else value


class _Parser:
    def __init__(self, tokens: list[str]):
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.tokens)

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ParseError(f"expected {expected or 'more'}, got {token!r}")
        self.pos += 1
        return token

    def answers(self, closers: tuple[str, ...] = ()) -> sympy.Basic:
        """item ((',' | 'or' | 'and' | ';') item)*: one answer, or a set of answers."""
        items, joiners, groups = [self.relation()], set(), [0]
        while self.peek() in _SEPARATORS and self.peek() not in closers:
            joiner = self.take()
            joiners.add(joiner)
            if joiners & {","} and self.peek() in ("and", "or"):  # "19, 46, and 82"
                joiners.add(self.take())
            groups += [len(items)] if joiner == ";" else []
            items.append(self.relation())
        if len(items) == 1:
            return items[0]
        if len(groups) > 1 and len(groups) < len(items):  # "p=5, q=2; p=7, q=2": two solutions of two parts
            bounds = groups + [len(items)]
            parts = [items[start:end] for start, end in zip(bounds, bounds[1:])]
            return FiniteSet(*(Tuple(*part) if len(part) > 1 else part[0] for part in parts))
        if all(isinstance(x, sympy.core.relational.Relational) and not isinstance(x, Eq) for x in items):
            return Or(*items) if joiners == {"or"} else And(*items)
        return answer_list(items)

    def relation(self) -> sympy.Basic:
        left = self.union()
        relations = []
        while self.peek() in _RELATIONS:
            op = _RELATIONS[self.take()]
            right = self.union()
            relations.append(op(left, right, evaluate=False))
            left = right
        if not relations:
            return left
        return relations[0] if len(relations) == 1 else And(*relations, evaluate=False)

    def union(self) -> sympy.Basic:
        value = self.sum()
        while self.peek() in ("U", "∪"):
            self.take()
            value = Union(_as_set(value), _as_set(self.sum()))
        return value

    def sum(self) -> sympy.Basic:
        value = self.term()
        while self.peek() in ("+", "-"):
            sign = self.take()
            right = self.term()
            value = value + right if sign == "+" else value - right
        return value

    def term(self) -> sympy.Basic:
        value = self.unary()
        while True:
            token = self.peek()
            if token in ("*", "×", "·"):
                self.take()
                value = value * self.unary()
            elif token in ("/", "÷"):
                self.take()
                value = value / self.unary()
            elif token == "mod":  # `17 mod 5` is the remainder 2
                self.take()
                value = sympy.Mod(value, self.unary())
            elif self._starts_atom(token):
                value = value * self.power()
            else:
                return value

    def unary(self) -> sympy.Basic:
        if self.peek() in ("-", "+"):
            sign = self.take()
            operand = self.unary()
            return -operand if sign == "-" else operand
        return self.power()

    def power(self) -> sympy.Basic:
        base = self.postfix()
        if self.peek() in ("^", "**"):
            self.take()
            exponent = self.group("{", "}") if self.peek() == "{" else self.unary()
            return sympy.Pow(base, exponent, evaluate=False)
        return base

    def postfix(self) -> sympy.Basic:
        value = self.atom()
        while self.peek() == "!":
            self.take()
            if self.peek() == "!":  # `5!!` is the double factorial 15, not (5!)!
                self.take()
                value = sympy.factorial2(value, evaluate=False)
            else:
                value = sympy.factorial(value, evaluate=False)
        return value

    def atom(self) -> sympy.Basic:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError("nesting too deep")
        try:
            return self._atom()
        finally:
            self.depth -= 1

    def _atom(self) -> sympy.Basic:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            return _number(token)
        if token in _CONSTANTS:
            return _CONSTANTS[token]
        if token in _FUNCTIONS:
            argument = self.group("(", ")") if self.peek() == "(" else self.power()
            return _FUNCTIONS[token](argument)
        if token == "√":
            return sympy.sqrt(self.power())
        if token == "|":
            inner = self.sum()
            self.take("|")
            return Abs(inner)
        if token in ("(", "["):
            return self.bracketed(token)
        if token == "{":
            return self.set_literal()
        if token.isalpha() or token == "θ":
            return Symbol(token)
        raise ParseError(f"unexpected {token!r}")

    def group(self, opener: str, closer: str) -> sympy.Basic:
        self.take(opener)
        value = self.sum()
        self.take(closer)
        return value

    def bracketed(self, opener: str) -> sympy.Basic:
        items = [self.relation()]
        while self.peek() == ",":
            self.take()
            items.append(self.relation())
        closer = self.take()
        if closer not in (")", "]"):
            raise ParseError(f"unclosed {opener}")
        if len(items) == 1:
            if opener + closer != "()" and opener + closer != "[]":
                raise ParseError("mismatched brackets")
            return items[0]
        if opener + closer == "()":
            return Tuple(*items)
        return make_interval(items, opener, closer)

    def set_literal(self) -> sympy.Basic:
        if self.peek() == "}":
            self.take()
            return sympy.S.EmptySet
        value = self.answers()
        self.take("}")
        if isinstance(value, AnswerList):
            return FiniteSet(*value.args)  # a set literal is a set: `{1, 1, 2}` is `{1, 2}`
        return value if isinstance(value, FiniteSet) else FiniteSet(value)

    def _starts_atom(self, token: str | None) -> bool:
        if token is None or token in _SEPARATORS or token in ("U", "∪", "mod"):
            return False
        return token[0].isalnum() or token[0] == "." or token in ("(", "√", "π", "∞", "θ") or token in _FUNCTIONS


def make_interval(ends: list[sympy.Basic], opener: str, closer: str) -> sympy.Interval:
    """`[a, b)` and friends; an empty or reversed interval ("[3, 1]") is not an answer."""
    if len(ends) != 2:
        raise ParseError("an interval has two ends")
    interval = Interval(ends[0], ends[1], left_open=opener == "(", right_open=closer == ")")
    if not isinstance(interval, Interval):
        raise ParseError("empty or reversed interval")
    return interval


def _as_set(value: sympy.Basic) -> sympy.Set:
    if isinstance(value, sympy.Set):
        return value
    if isinstance(value, Tuple) and len(value) == 2:
        return make_interval(list(value.args), "(", ")")
    raise ParseError("union of non-sets")

