"""Is a parsed answer the same math as a parsed reference? Structure first, then scalars.

What it is for: the dispatch between answer shapes, each with its own rule:
  - text answers ("(B)", "yes"): equal lower-case words; a text reference never equals math;
  - several answers (a bare list "2, 3", "x=2 or x=3", `\\pm`, a set `\\{2, 3\\}`): order-free,
    same count, one-to-one matching, so a subset or superset (a hedge) fails; a reference list
    with a repeat (`1, 2, 2`) counts multiplicity; a set of sets is never the set (`{∅}` ≠ `∅`);
  - tuples (ordered) and matrices (same shape); a tuple also equals a one-row/column matrix;
    tuple assignments compare by name (`(y, x) = (2, 1)` is `(x, y) = (1, 2)`); a ratio chain
    (`1:2:3`, see `parse.RatioChain`) equals only another ratio chain;
  - intervals and unions: endpoints equal and open/closed ends equal; `(a, b)` read as a tuple
    also equals the open interval (a, b) (a reversed pair never the empty set); a one-variable
    inequality, or a chain bounding one name (`0 < f(x) < 1`), equals its solution set;
  - equations: `x = 5` equals `5`; two assignments must name the same variable; other
    equations are equal when `lhs - rhs` of one is a nonzero constant times the other's;
  - inequalities: same strictness and `lhs - rhs` a positive constant multiple (x > 2 == 2 < x);
  - percent: "50%" equals 50 and 0.5; two percent answers compare their numbers;
  - scalars: see `numeric` (exact for rationals, strict rounding rule for lone decimals).

What it does not do: extraction, parsing, time limits (it must run inside the worker).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sympy
from sympy.core.function import AppliedUndef
from sympy.core.relational import Equality, Relational

from verifiers.math.numeric import DEFAULT_REL_TOL, decimal_matches, decimals_match, scalars_equal
from verifiers.math.parse import Decimal, Parsed, RatioChain
from verifiers.math.textparse import AnswerList

MAX_MATCHING_ITEMS = 12


def answers_equal(reference: Parsed, answer: Parsed, rel_tol: float = DEFAULT_REL_TOL) -> bool:
    """Top-level comparison of a parsed answer with a parsed reference."""
    if reference.names and answer.names and reference.names != answer.names:
        answer = _in_reference_order(answer, reference.names)  # `(y, x) = (2, 1)` vs `(x, y) = (1, 2)`
        if answer is None:
            return False
    if reference.words is not None or answer.words is not None:
        return reference.words == answer.words
    if isinstance(answer.value, AnswerList) and not isinstance(reference.value, AnswerList):
        answer = dataclasses.replace(answer, value=sympy.FiniteSet(*answer.value.args))  # multiplicity only
        # counts when the reference lists an item twice (`1, 2, 2`): then `1, 1, 2` is another answer
    return any(_values_equal(ref_value, ref_dec, ans_value, ans_dec, rel_tol)
               for ref_value, ref_dec, ans_value, ans_dec in _percent_readings(reference, answer))


def _in_reference_order(answer: Parsed, names: tuple[str, ...]) -> Parsed | None:
    """The answer's named tuple reordered to the reference's names; None when the names differ."""
    if sorted(answer.names) != sorted(names) or names[0] == ":" or len(set(names)) != len(names):
        return None  # other names, or a reversed ratio: not the reference's quantities
    if not isinstance(answer.value, sympy.Tuple) or len(answer.value) != len(names):
        return None
    by_name = dict(zip(answer.names, answer.value.args))
    return dataclasses.replace(answer, value=sympy.Tuple(*(by_name[name] for name in names)), names=names)


def values_equal(a: Any, b: Any) -> bool:
    """Structural equality of two sympy values (no decimal or percent rules)."""
    if _is_collection(a) or _is_collection(b):
        if _is_other_set(a) or _is_other_set(b):  # `\\{\\emptyset\\}` is not `\\emptyset`, `\\{[0, 1]\\}` not `[0, 1]`
            return _sets_equal(_as_set(a), _as_set(b))
        return _collections_equal(_items(a), _items(b))
    if _is_sequence(a) or _is_sequence(b):
        if _is_pair_vs_interval(a, b):
            return _sets_equal(_as_set(a), _as_set(b))
        return _sequences_equal(a, b)
    if isinstance(a, sympy.Set) or isinstance(b, sympy.Set):
        return _sets_equal(_as_set(a), _as_set(b))
    if _is_relation(a) or _is_relation(b):
        return _relations_equal(a, b)
    return scalars_equal(a, b)


def _values_equal(a: Any, a_dec: Decimal | None, b: Any, b_dec: Decimal | None, rel_tol: float) -> bool:
    if a_dec is not None and b_dec is not None:
        return decimals_match(a_dec, b_dec, rel_tol)
    if b_dec is not None and _is_scalar(a):
        return decimal_matches(b_dec, a, rel_tol)
    if a_dec is not None and _is_scalar(b):
        return decimal_matches(a_dec, b, rel_tol)
    return values_equal(a, b)


def _percent_readings(reference: Parsed, answer: Parsed):
    """(ref value, ref decimal, answer value, answer decimal) readings allowed by percent signs."""
    yield reference.value, reference.decimal, answer.value, answer.decimal
    if reference.percent != answer.percent:
        marked, plain = (reference, answer) if reference.percent else (answer, reference)
        hundredth = sympy.Rational(1, 100)
        scaled_dec = marked.decimal.scaled(hundredth) if marked.decimal else None
        scaled = (marked.value * hundredth) if _is_scalar(marked.value) else None
        if scaled is not None:
            yield scaled, scaled_dec, plain.value, plain.decimal


def named_values(value: Any) -> Any:
    """A reference that names its values (`AB=4, CD=5`, `\\frac{NO}{BO}=\\frac{1}{\\sqrt{6}}`,
    `p=5,q=2;p=7,q=2`) -> the values (`4, 5`; `1/\\sqrt{6}`; `(5,2), (7,2)`). Only a name (a symbol,
    a product or ratio of symbols, `f(x)`) equal to a constant is dropped; anything else is kept."""
    if isinstance(value, Equality) and _is_name(value.lhs) and not value.rhs.free_symbols:
        return value.rhs
    if isinstance(value, (sympy.FiniteSet, sympy.Tuple)):
        return type(value)(*(named_values(item) for item in value.args))
    return value


def _is_name(expr: Any) -> bool:
    if isinstance(expr, (sympy.Symbol, AppliedUndef)):
        return True
    if isinstance(expr, sympy.Pow):
        return expr.exp == -1 and _is_name(expr.base)
    return isinstance(expr, sympy.Mul) and all(_is_name(factor) for factor in expr.args)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, sympy.Expr) and not isinstance(value, sympy.Tuple)


def _is_collection(value: Any) -> bool:
    return isinstance(value, (sympy.FiniteSet, AnswerList))


def _is_other_set(value: Any) -> bool:
    return isinstance(value, sympy.Set) and not isinstance(value, sympy.FiniteSet)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (sympy.Tuple, sympy.MatrixBase))


def _is_relation(value: Any) -> bool:
    return isinstance(value, (Relational, sympy.And, sympy.Or))


def _items(value: Any) -> list[Any]:
    return list(getattr(value, "_unsorted_args", None) or value.args) if _is_collection(value) else [value]


def _collections_equal(a: list[Any], b: list[Any]) -> bool:
    """Same number of answers and a one-to-one matching (order-free)."""
    if len(a) != len(b) or len(a) > MAX_MATCHING_ITEMS:
        return False
    return _match_all(a, list(b))


def _match_all(left: list[Any], right: list[Any]) -> bool:
    if not left:
        return True
    head, rest = left[0], left[1:]
    for index, candidate in enumerate(right):
        if values_equal(head, candidate) and _match_all(rest, right[:index] + right[index + 1:]):
            return True
    return False


def _sequence_items(value: Any) -> list[Any]:
    if isinstance(value, sympy.MatrixBase):
        return list(value)
    return list(value.args)


def _sequences_equal(a: Any, b: Any) -> bool:
    if isinstance(a, RatioChain) != isinstance(b, RatioChain):
        return False  # `2:4:6` is the ratio 1:2:3, not the triple (1, 2, 3)
    if isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase):
        if a.shape != b.shape:
            return False
    elif isinstance(a, sympy.MatrixBase) or isinstance(b, sympy.MatrixBase):
        matrix = a if isinstance(a, sympy.MatrixBase) else b
        if 1 not in matrix.shape:
            return False
    elif not (isinstance(a, sympy.Tuple) and isinstance(b, sympy.Tuple)):
        return False
    items_a, items_b = _sequence_items(a), _sequence_items(b)
    return len(items_a) == len(items_b) and all(values_equal(x, y) for x, y in zip(items_a, items_b))


def _is_pair_vs_interval(a: Any, b: Any) -> bool:
    pair = (isinstance(a, sympy.Tuple) and len(a) == 2) or (isinstance(b, sympy.Tuple) and len(b) == 2)
    set_like = (isinstance(a, sympy.Set) or isinstance(b, sympy.Set)
                or _is_relation(a) or _is_relation(b))
    return pair and set_like


def _as_set(value: Any) -> sympy.Set | None:
    if isinstance(value, sympy.Set):
        return value
    if isinstance(value, sympy.Tuple) and len(value) == 2:
        interval = sympy.Interval.open(value[0], value[1])
        return interval if isinstance(interval, sympy.Interval) else None  # `(2, 1)` is a pair, never the empty set
    if _is_relation(value) and len(value.free_symbols) == 1:
        return value.as_set()
    subject = _common_subject(value) if _is_relation(value) else None
    if subject is not None:  # `0 < f(x) < 1`: the set of values of f(x)
        return value.xreplace({subject: _SUBJECT}).as_set()
    return None


_SUBJECT = sympy.Symbol("subject", real=True)


def _common_subject(value: Any) -> Any:
    """The one name (`f(x)`, read as a function or as `f*x`) that every inequality of a chain bounds."""
    relations = list(value.args) if isinstance(value, (sympy.And, sympy.Or)) else [value]
    subjects = set()
    for relation in relations:
        if not isinstance(relation, Relational) or isinstance(relation, (Equality, sympy.Ne)):
            return None
        sides = [side for side in (relation.lhs, relation.rhs) if side.free_symbols]
        if len(sides) != 1:
            return None
        subjects.add(sides[0])
    subject = subjects.pop() if len(subjects) == 1 else None
    return subject if subject is not None and _is_name(subject) else None


def _set_parts(value: sympy.Set) -> list[sympy.Set]:
    parts = list(value.args) if isinstance(value, sympy.Union) else [value]
    return sorted(parts, key=lambda p: sympy.N(p.inf) if p.inf.is_number else 0)


def _sets_equal(a: sympy.Set | None, b: sympy.Set | None) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, sympy.Union) or isinstance(b, sympy.Union):
        parts_a, parts_b = _set_parts(a), _set_parts(b)
        return len(parts_a) == len(parts_b) and all(_sets_equal(x, y) for x, y in zip(parts_a, parts_b))
    if isinstance(a, sympy.Interval) and isinstance(b, sympy.Interval):
        return (a.left_open == b.left_open and a.right_open == b.right_open
                and scalars_equal(a.start, b.start) and scalars_equal(a.end, b.end))
    if isinstance(a, sympy.FiniteSet) and isinstance(b, sympy.FiniteSet):
        return _collections_equal(list(a.args), list(b.args))
    return a == b


def _relations_equal(a: Any, b: Any) -> bool:
    a, b = _last_assignment(a), _last_assignment(b)
    if not _is_relation(a) or not _is_relation(b):
        return _relation_vs_value(a, b)
    if isinstance(a, Equality) and isinstance(b, Equality):
        return _equations_equal(a, b)
    if isinstance(a, (sympy.And, sympy.Or)) or isinstance(b, (sympy.And, sympy.Or)):
        return _sets_equal(_as_set(a), _as_set(b))
    if type(a) in _INEQUALITIES and type(b) in _INEQUALITIES:
        return _inequalities_equal(a, b)
    if isinstance(a, sympy.Ne) and isinstance(b, sympy.Ne):
        return _proportional(a.lhs - a.rhs, b.lhs - b.rhs, positive=False)
    return False


def _relation_vs_value(a: Any, b: Any) -> bool:
    """`x = 5` vs `5`: compare the assigned value; an inequality vs an interval: compare sets."""
    relation, value = (a, b) if _is_relation(a) else (b, a)
    if _is_assignment(relation):
        return values_equal(relation.rhs, value)
    if isinstance(value, sympy.Set):
        return _sets_equal(_as_set(relation), value)
    return False


def _last_assignment(value: Any) -> Any:
    """`x = 2 + 3 = 5` (a chain of equalities starting with a variable) -> `x = 5`."""
    if isinstance(value, sympy.And) and all(isinstance(arg, Equality) for arg in value.args):
        equalities = list(value.args)
        first = next((e for e in equalities if isinstance(e.lhs, sympy.Symbol)), None)
        if first is not None:
            return sympy.Eq(first.lhs, equalities[-1].rhs, evaluate=False) if len(equalities) > 1 else first
    return value


def _is_assignment(relation: Any) -> bool:
    return (isinstance(relation, Equality) and isinstance(relation.lhs, (sympy.Symbol, sympy.Function))
            and not relation.rhs.has(relation.lhs))


def _equations_equal(a: Equality, b: Equality) -> bool:
    if _is_assignment(a) and _is_assignment(b):
        return a.lhs == b.lhs and values_equal(a.rhs, b.rhs)
    return _proportional(a.lhs - a.rhs, b.lhs - b.rhs, positive=False)


_INEQUALITIES = {sympy.StrictGreaterThan: (1, True), sympy.StrictLessThan: (-1, True),
                 sympy.GreaterThan: (1, False), sympy.LessThan: (-1, False)}


def _inequalities_equal(a: Relational, b: Relational) -> bool:
    sign_a, strict_a = _INEQUALITIES[type(a)]
    sign_b, strict_b = _INEQUALITIES[type(b)]
    if strict_a != strict_b:
        return False
    return _proportional(sign_a * (a.lhs - a.rhs), sign_b * (b.lhs - b.rhs), positive=True)


def _proportional(a: sympy.Expr, b: sympy.Expr, positive: bool) -> bool:
    """Is a == k*b for a constant k (k > 0 when `positive`)?"""
    if a == 0 or b == 0:
        return a == 0 and b == 0
    ratio = sympy.simplify(a / b)
    if ratio.free_symbols or not ratio.is_number or ratio == 0 or not ratio.is_finite:
        return False
    return bool(ratio.is_positive) if positive else True
