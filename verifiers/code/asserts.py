"""Judge an assert test in the trusted parent, on plain values: strict types, no untrusted hashing.

What it is for: `judge(compile_assert(source), leaf_values)` evaluates the part of the assert that
`testsplit.compile_assert` kept for the parent (comparisons, `not`/`and`/`or`, arithmetic on numbers,
constants and containers, and a few pure builtins: abs, len, round, sorted, set, min, max, sum, all,
any, isinstance, type, math.isclose / fabs / isinf / isnan / isfinite / floor / ceil / trunc), with every
leaf replaced by its value: a candidate call's value from the sandbox, an expected value or a wrapper
around candidate values from the trusted worker. The builtins here are always Python's own (a
program that defines `abs` or a module `math` does not change the test).

Policy (documented in docs/verifiers-code.md):
- `==`, `!=`, `in`, `not in`, `is None` use type-strict equality (values.strict_equal): 1 != True != 1.0.
- sets and dicts (decoded or built here) are values.PlainSet / PlainDict: no untrusted value is hashed.
- ordering (<, <=, >, >=) allows int vs float, nothing else mixed (no bools).
- truth is strict: `assert e` passes only if `e` is exactly True; `not`, `and`, `or` need bools.
- work here is bounded by the size of the values (ints, powers, repetitions and round() digits capped).

What it does NOT do: split tests (see `testsplit.py`), run anything from the candidate, or accept
statements other than one `assert`.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

from verifiers.code.testsplit import LEAF_PREFIX, BadTest, SplitTest, call_name, compile_assert
from verifiers.code.values import PlainDict, PlainSet, canonical, make_dict, make_set, strict_equal, type_of

__all__ = ["BadTest", "CheckFailed", "SplitTest", "compile_assert", "judge"]
MAX_INT_BITS = 1 << 14
MAX_SEQUENCE = 1 << 20
MAX_ROUND_DIGITS = 400
TYPE_NAMES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "tuple": tuple, "dict": dict,
              "set": set, "frozenset": frozenset}


class CheckFailed(Exception):
    """Raised while judging: the candidate's values do not satisfy the assert."""


def _isclose(a, b, *, rel_tol=1e-09, abs_tol=0.0):
    return math.isclose(_number(a), _number(b), rel_tol=_number(rel_tol), abs_tol=_number(abs_tol))


SAFE_CALLS = {
    "abs": lambda x: abs(_numeric(x)),
    "len": lambda x: len(_sized(x)),
    "round": lambda x, n=None: round(_number(x)) if n is None else round(_number(x), _ndigits(n)),
    "sorted": lambda x, *, reverse=False: sorted(_sized(x), reverse=_bool(reverse)),
    "set": lambda x=(): make_set(set, _sized(x)),  # sorted by canonical form: no untrusted value is hashed
    "frozenset": lambda x=(): make_set(frozenset, _sized(x)),
    "list": lambda x=(): list(_sized(x)),
    "tuple": lambda x=(): tuple(_sized(x)),
    "min": lambda *xs: min(_sized(xs[0]) if len(xs) == 1 else xs),
    "max": lambda *xs: max(_sized(xs[0]) if len(xs) == 1 else xs),
    "sum": lambda x, start=0: sum((_number(v) for v in _sized(x)), _number(start)),
    "all": lambda x: all(_bool(v) for v in _sized(x)),
    "any": lambda x: any(_bool(v) for v in _sized(x)),
    "isinstance": lambda x, t: issubclass(type_of(x), t),
    "type": lambda x: type_of(x),  # the builtin type a plain value stands for
    "math.isclose": _isclose,
    "math.fabs": lambda x: math.fabs(_number(x)),
    "math.isinf": lambda x: math.isinf(_number(x)),
    "math.isnan": lambda x: math.isnan(_number(x)),
    "math.isfinite": lambda x: math.isfinite(_number(x)),
    "math.floor": lambda x: math.floor(_number(x)),
    "math.ceil": lambda x: math.ceil(_number(x)),
    "math.trunc": lambda x: math.trunc(_number(x)),
}
BIN_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
ORDER_OPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}


# ----------------------------------------------------------------------------------------- judging
def judge(test: SplitTest, leaf_values: list[Any]) -> None:
    """Raise CheckFailed unless the assert holds for these leaf values (evaluated here, in the parent)."""
    try:
        result = _eval(test.root, leaf_values)
    except CheckFailed:
        raise
    except (ArithmeticError, TypeError, ValueError, RecursionError) as exc:
        raise CheckFailed(f"{type(exc).__name__}: {exc}") from None
    if result is not True:
        raise CheckFailed("assertion is False" if result is False else f"assertion value {result!r} is not True")


def _eval(node: ast.expr, leaves: list[Any]) -> Any:
    if isinstance(node, ast.Name):
        if node.id.startswith(LEAF_PREFIX):
            return leaves[int(node.id[len(LEAF_PREFIX):])]
        return TYPE_NAMES[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Set):
        return make_set(set, [_eval(e, leaves) for e in node.elts])
    if isinstance(node, (ast.List, ast.Tuple)):
        return (list if isinstance(node, ast.List) else tuple)(_eval(e, leaves) for e in node.elts)
    if isinstance(node, ast.Dict):
        return make_dict([(_eval(k, leaves), _eval(v, leaves)) for k, v in zip(node.keys, node.values)])
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, leaves)
        return (not _bool(value)) if isinstance(node.op, ast.Not) else _unary_number(node.op, value)
    if isinstance(node, ast.BinOp):
        return _binop(node.op, _eval(node.left, leaves), _eval(node.right, leaves))
    if isinstance(node, ast.BoolOp):
        return _boolop(node, leaves)
    if isinstance(node, ast.Compare):
        return _compare(node, leaves)
    if isinstance(node, ast.Call):
        args = [_eval(a, leaves) for a in node.args]
        kwargs = {k.arg: _eval(k.value, leaves) for k in node.keywords}
        return SAFE_CALLS[call_name(node)](*args, **kwargs)
    raise CheckFailed(f"cannot evaluate {type(node).__name__}")  # unreachable after _split


def _boolop(node: ast.BoolOp, leaves: list[Any]) -> bool:
    want_and = isinstance(node.op, ast.And)
    for operand in node.values:
        value = _bool(_eval(operand, leaves))
        if value is not want_and:
            return value
    return want_and


def _compare(node: ast.Compare, leaves: list[Any]) -> bool:
    left = _eval(node.left, leaves)
    for op, right_node in zip(node.ops, node.comparators):
        right = _eval(right_node, leaves)
        if not _compare_once(op, left, right):
            return False
        left = right
    return True


def _compare_once(op: ast.cmpop, left: Any, right: Any) -> bool:
    if type(left) is type and type(right) is type and isinstance(op, (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)):
        return (left is right) is isinstance(op, (ast.Eq, ast.Is))  # type(f(x)) == int: builtin types only
    if isinstance(op, (ast.Eq, ast.NotEq)):
        return strict_equal(left, right) is isinstance(op, ast.Eq)
    if isinstance(op, (ast.Is, ast.IsNot)):
        if not (_singleton(left) or _singleton(right)):
            raise CheckFailed("`is` is only supported against None, True or False")
        same = type(left) is type(right) and left == right
        return same is isinstance(op, ast.Is)
    if isinstance(op, (ast.In, ast.NotIn)):
        return _contains(right, left) is isinstance(op, ast.In)
    return _ordered(op, left, right)


def _contains(container: Any, item: Any) -> bool:
    if type(container) is str:
        if type(item) is not str:
            raise CheckFailed("`in <str>` needs a str")
        return item in container
    if type(container) in (PlainSet, PlainDict):
        return item in container  # binary search over canonical forms
    wanted = canonical(item)  # once: comparing forms is linear in the reply, never items x elements
    return any(canonical(v) == wanted for v in _sized(container))


def _ordered(op: ast.cmpop, left: Any, right: Any) -> bool:
    numbers = _is_number(left) and _is_number(right)
    if not numbers and not (type(left) is type(right) and type(left) in (str, list, tuple)):
        raise CheckFailed(f"cannot order {type(left).__name__} against {type(right).__name__}")
    return ORDER_OPS[type(op)](left, right)


def _binop(op: ast.operator, left: Any, right: Any) -> Any:
    if not (_is_numeric(left) and _is_numeric(right)):
        return _sequence_op(op, left, right)
    _numeric(left), _numeric(right)
    if isinstance(op, ast.Pow) and type(left) is int and type(right) is int and \
            _bits(left) * abs(right) > MAX_INT_BITS:
        raise CheckFailed("power too large to evaluate in the parent")
    if isinstance(op, ast.Mult) and _bits(left) + _bits(right) > MAX_INT_BITS:
        raise CheckFailed("product too large to evaluate in the parent")
    return BIN_OPS[type(op)](left, right)


def _sequence_op(op: ast.operator, left: Any, right: Any) -> Any:
    """`[0] * 3`, `"ab" + "c"`: repetition and concatenation of str/list/tuple, size-bounded."""
    sequences = (str, list, tuple)
    if isinstance(op, ast.Add) and type(left) is type(right) and type(left) in sequences:
        size = len(left) + len(right)
    elif isinstance(op, ast.Mult) and {type(left), type(right)} & set(sequences) and \
            int in (type(left), type(right)):
        seq, times = (left, right) if type(right) is int else (right, left)
        size = len(seq) * max(times, 0)
    else:
        raise CheckFailed(f"unsupported operands {type(left).__name__} and {type(right).__name__}")
    if size > MAX_SEQUENCE:
        raise CheckFailed("sequence too large to evaluate in the parent")
    return BIN_OPS[type(op)](left, right)


def _unary_number(op: ast.unaryop, value: Any) -> Any:
    return -_numeric(value) if isinstance(op, ast.USub) else +_numeric(value)


# ----------------------------------------------------------------------------------------- type guards
def _is_numeric(value: Any) -> bool:
    """Arithmetic and abs() also take complex numbers (ordering does not)."""
    return type(value) in (int, float, complex)


def _numeric(value: Any) -> int | float | complex:
    return value if type(value) is complex else _number(value)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _number(value: Any) -> int | float:
    if not _is_number(value) or (type(value) is int and value.bit_length() > MAX_INT_BITS):
        raise CheckFailed(f"expected a number, got {type(value).__name__}")
    return value


def _singleton(value: Any) -> bool:
    return value is None or type(value) is bool


def _int(value: Any) -> int:
    if type(value) is not int:
        raise CheckFailed(f"expected an int, got {type(value).__name__}")
    return value


def _ndigits(value: Any) -> int:
    """round()'s digits: a huge negative one would make Python build 10**-n in the parent."""
    if _int(value) < -MAX_ROUND_DIGITS or value > MAX_ROUND_DIGITS:
        raise CheckFailed(f"round() digits out of range: {value}")
    return value


def _bool(value: Any) -> bool:
    if type(value) is not bool:
        raise CheckFailed(f"expected a bool, got {type(value).__name__}")
    return value


def _sized(value: Any) -> Any:
    if type(value) not in (list, tuple, PlainSet, PlainDict, str):
        raise CheckFailed(f"expected a container, got {type(value).__name__}")
    return value


def _bits(value: int | float) -> int:
    return value.bit_length() if type(value) is int else 64
