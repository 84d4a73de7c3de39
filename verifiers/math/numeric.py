"""Equality of two scalar sympy expressions: exact where the math is exact.

What it is for: the bottom layer of `compare`. Rules, in order:
  1. identical after evaluation (`doit`) -> equal;
  2. two rationals (integers included) -> equal only if exactly equal: a 30-digit integer and its
     neighbour differ, 1/2004! and 1/2006! differ;
  3. closed-form numbers (no symbols): a 30-digit numeric look rejects clearly different values;
     close ones are accepted only if `simplify(a - b) == 0`, or if evaluation to guaranteed precision
     cannot find a nonzero difference and they agree to 80 significant digits (`\\pi + 10^{-90}` is
     not `\\pi`);
  4. expressions with symbols: random rational points reject clearly different ones; equality is
     accepted only when sympy proves `a - b == 0` (expand, then simplify). No numeric acceptance.
  5. a lone decimal answer (see `parse.Decimal`) against another value: equal if exactly equal, or
     if it is that value correctly rounded to its own stated digits AND those digits are precise
     enough: half a unit of the last digit must be at most `rel_tol` (default 1e-6) of the value.
     So 0.3333333 matches 1/3 but 0.333333 (half-ulp 5e-7 > 3.3e-7) and 0.33 do not; 3.14159 does
     not match 3.14; 2.0 matches 2. Never "round both to 6 decimals".

What it does not do: structures (sets, tuples, relations: see `compare`), or time limits: these
functions may run long on adversarial input and must only run inside the time-limited worker.
"""

from __future__ import annotations

import random

import sympy

from verifiers.math.parse import Decimal

DEFAULT_REL_TOL = 1e-6
REJECT_DIGITS = 30
ACCEPT_DIGITS = 80
RANDOM_POINTS = 3
PROOF_MAX_DIGITS = 1000


def scalars_equal(a: sympy.Basic, b: sympy.Basic) -> bool:
    """Exact equality of two scalar expressions (rules 1-4 of the module docstring)."""
    a, b = _evaluate(a), _evaluate(b)
    if _undefined(a) or _undefined(b):  # 1/0, 0/0: never equal to anything, itself included
        return False
    if a == b:
        return True
    if a.is_Rational and b.is_Rational:
        return False
    if not (a.free_symbols or b.free_symbols):
        return _closed_forms_equal(a, b)
    return _symbolic_equal(a, b)


def decimal_matches(decimal: Decimal, other: sympy.Basic, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    """Rule 5: is `decimal` the correctly rounded, precise-enough value of `other`?"""
    other = _evaluate(other)
    if other.free_symbols or _undefined(other):
        return False
    if decimal.value == other:
        return True
    exact = sympy.N(other, REJECT_DIGITS)
    if not exact.is_real or not exact.is_finite:
        return False
    magnitude = abs(exact)
    if magnitude == 0 or decimal.half_ulp > rel_tol * magnitude:
        return False
    return bool(abs(decimal.value - exact) <= decimal.half_ulp * (1 + sympy.Rational(1, 10 ** 12)))


def decimals_match(a: Decimal, b: Decimal, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    """Two lone decimals: the less precise must be the correct rounding of the more precise one."""
    coarse, fine = (a, b) if a.half_ulp >= b.half_ulp else (b, a)
    return decimal_matches(coarse, fine.value, rel_tol)


def _undefined(expr: sympy.Basic) -> bool:
    return bool(isinstance(expr, sympy.Basic) and expr.has(sympy.zoo, sympy.nan))


def _evaluate(expr: sympy.Basic) -> sympy.Basic:
    return expr.doit() if isinstance(expr, sympy.Basic) else sympy.S(expr)


def _closed_forms_equal(a: sympy.Basic, b: sympy.Basic) -> bool:
    va, vb = sympy.N(a, REJECT_DIGITS), sympy.N(b, REJECT_DIGITS)
    if not (_is_number(va) and _is_number(vb)):
        return False
    scale = max(abs(va), abs(vb))
    if abs(va - vb) > scale * sympy.Float(10) ** (-REJECT_DIGITS // 2):
        return False
    if sympy.simplify(a - b) == 0:
        return True
    if _provably_nonzero(a - b):  # `\\pi + 10^{-90}` is not `\\pi`, however many digits agree
        return False
    va, vb = sympy.N(a, ACCEPT_DIGITS + 20), sympy.N(b, ACCEPT_DIGITS + 20)
    return bool(abs(va - vb) <= max(abs(va), abs(vb)) * sympy.Float(10, ACCEPT_DIGITS + 20) ** (-ACCEPT_DIGITS))


def _provably_nonzero(difference: sympy.Basic) -> bool:
    """True when evaluation to guaranteed precision finds a nonzero value (an exact zero exhausts it)."""
    try:
        value = difference.evalf(REJECT_DIGITS, strict=True, maxn=PROOF_MAX_DIGITS)
    except Exception:  # PrecisionExhausted (the usual sign of an exact zero) or a value evalf cannot bound
        return False
    return bool(value.is_number and value != 0)


def _symbolic_equal(a: sympy.Basic, b: sympy.Basic) -> bool:
    if _differ_at_random_points(a, b):
        return False
    difference = a - b
    return bool(sympy.expand(difference) == 0 or sympy.simplify(difference) == 0)


def _differ_at_random_points(a: sympy.Basic, b: sympy.Basic) -> bool:
    """True when a and b take clearly different finite values at some random rational point."""
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    rng = random.Random(20240531)
    for _ in range(RANDOM_POINTS):
        point = {s: sympy.Rational(rng.randint(1, 997), rng.randint(1, 101)) for s in symbols}
        va, vb = sympy.N(a.subs(point), REJECT_DIGITS), sympy.N(b.subs(point), REJECT_DIGITS)
        if not (_is_number(va) and _is_number(vb)):
            continue
        if abs(va - vb) > max(abs(va), abs(vb), 1) * sympy.Float(10) ** -10:
            return True
    return False


def _is_number(value: sympy.Basic) -> bool:
    return bool(value.is_number and value.is_finite) and not value.has(sympy.nan, sympy.zoo)
