"""Split assert tests into what the sandbox evaluates and what the trusted parent keeps and judges.

What it is for: `compile_assert("assert add(1, 2) == 3")` returns a `SplitTest` whose `leaves` are the
sub-expressions that need candidate code (`["add(1, 2)"]`, sent to the sandbox) and whose `root` is
the rest of the expression with each leaf replaced by a placeholder; `judge(test, leaf_values)`
evaluates that rest here, in the parent, on the plain values the sandbox sent back. Constants,
containers of them, comparisons, `not`/`and`/`or`, arithmetic on numbers and a few pure builtins
(abs, len, round, sorted, set, min, max, sum, isinstance, math.isclose...) are evaluated in the
parent: expected values never enter the sandbox, and a candidate cannot patch the comparison.

Policy (documented in docs/verifiers-code.md):
- `==`, `!=`, `in`, `not in`, `is None` use type-strict equality (values.strict_equal): 1 != True != 1.0.
- sets and dicts (decoded or built here) are values.PlainSet / PlainDict: no untrusted value is hashed.
- ordering (<, <=, >, >=) allows int vs float, nothing else mixed (no bools).
- truth is strict: `assert e` passes only if `e` is exactly True; `not`, `and`, `or` need bools.
- the builtins named above are always Python's own (a program that defines `abs` does not change the test).
- a leaf that itself contains test logic (a comparison, boolean operator, comprehension, lambda) is
  evaluated in the sandbox and its result trusted as a plain value; such tests are reported as
  "weak" (`SplitTest.weak`): a candidate can forge them, as it could under any in-process harness.

What it does NOT do: run anything from the candidate, or accept statements other than one `assert`.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
from dataclasses import dataclass, field
from typing import Any

from verifiers.code.values import PlainDict, PlainSet, canonical, make_dict, make_set, strict_equal, type_of

LEAF_PREFIX = "__leaf_"
MAX_INT_BITS = 1 << 14
MAX_SEQUENCE = 1 << 20
MAX_ROUND_DIGITS = 400
TYPE_NAMES = {"int": int, "float": float, "str": str, "bool": bool, "list": list, "tuple": tuple, "dict": dict,
              "set": set, "frozenset": frozenset}


class BadTest(ValueError):
    """The test itself is unusable (not one assert statement, unparsable...): a verifier error."""


class CheckFailed(Exception):
    """Raised while judging: the candidate's values do not satisfy the assert."""


def _isclose(a, b, *, rel_tol=1e-09, abs_tol=0.0):
    return math.isclose(_number(a), _number(b), rel_tol=_number(rel_tol), abs_tol=_number(abs_tol))


SAFE_CALLS = {
    "abs": lambda x: abs(_number(x)),
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
    "math.isclose": _isclose,
    "math.fabs": lambda x: math.fabs(_number(x)),
}
BIN_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
ORDER_OPS = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
PURE_NAMES = frozenset({
    "range", "list", "tuple", "dict", "set", "frozenset", "float", "int", "str", "bool", "abs", "len", "sorted",
    "min", "max", "sum", "round", "reversed", "enumerate", "zip", "map", "chr", "ord", "pow", "divmod", "any",
    "all", "repr", "bin", "hex", "oct"})
PURE_MODULES = frozenset({"math", "cmath", "string", "fractions", "decimal", "itertools", "collections"})
LOGIC_NODES = (ast.Compare, ast.BoolOp, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Lambda,
               ast.IfExp, ast.NamedExpr)


@dataclass
class SplitTest:
    source: str
    root: ast.expr
    leaves: list[str] = field(default_factory=list)
    pure: list[bool] = field(default_factory=list)  # leaf uses no candidate name: an expected value
    weak: bool = False


# ----------------------------------------------------------------------------------------- splitting
@functools.lru_cache(maxsize=8192)  # the K candidates of a task share its tests; SplitTest is never mutated
def compile_assert(source: str) -> SplitTest:
    try:
        module = ast.parse(source.strip())
    except SyntaxError as exc:
        raise BadTest(f"test does not parse: {exc.msg}") from None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.Assert):
        raise BadTest("each test must be exactly one assert statement")
    test = SplitTest(source=source, root=ast.Constant(None))
    test.root = _split(module.body[0].test, test)
    return test


def _split(node: ast.expr, test: SplitTest) -> ast.expr:
    """Replace every sub-expression the parent cannot evaluate by a placeholder leaf."""
    if not _parent_can_evaluate(node):
        return _make_leaf(node, test)
    for name, value in ast.iter_fields(node):
        if isinstance(value, ast.expr) and name != "func":
            setattr(node, name, _split(value, test))
        elif isinstance(value, list):
            setattr(node, name, [_split(v, test) if isinstance(v, ast.expr) else v for v in value])
    for keyword in getattr(node, "keywords", []):
        keyword.value = _split(keyword.value, test)
    return node


def _make_leaf(node: ast.expr, test: SplitTest) -> ast.expr:
    if any(isinstance(n, LOGIC_NODES) for n in ast.walk(node)):
        test.weak = True
    test.leaves.append(ast.unparse(node))
    test.pure.append(_is_pure(node))
    return ast.Name(id=f"{LEAF_PREFIX}{len(test.leaves) - 1}", ctx=ast.Load())


def _is_pure(node: ast.expr) -> bool:
    """True when the leaf names only builtins / stdlib modules, or no name at all (e.g. `math.pi`,
    `list(range(5))`, `''.join(['a', 'b'])`, `'abc'[::-1]`): it is part of the expected value and is
    evaluated by a worker that never runs candidate code, so the candidate controls neither side."""
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return names <= PURE_NAMES | PURE_MODULES


def _parent_can_evaluate(node: ast.expr) -> bool:
    if isinstance(node, (ast.Constant, ast.Compare, ast.BoolOp)):
        return True
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return not any(isinstance(e, ast.Starred) for e in node.elts)
    if isinstance(node, ast.Dict):
        return None not in node.keys
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, (ast.Not, ast.USub, ast.UAdd))
    if isinstance(node, ast.BinOp):
        return type(node.op) in BIN_OPS
    if isinstance(node, ast.Name):
        return node.id in TYPE_NAMES
    if isinstance(node, ast.Call):
        return _call_name(node) in SAFE_CALLS and not any(
            isinstance(a, (ast.Starred, ast.GeneratorExp, ast.Lambda)) for a in node.args) and all(
            k.arg is not None for k in node.keywords)
    return False


def _call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return None


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
        return SAFE_CALLS[_call_name(node)](*args, **kwargs)
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
    if not (_is_number(left) and _is_number(right)):
        return _sequence_op(op, left, right)
    _number(left), _number(right)
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
    return -_number(value) if isinstance(op, ast.USub) else +_number(value)


# ----------------------------------------------------------------------------------------- type guards
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
