"""Split an assert test into the candidate's own calls (run in the sandbox) and everything else (trusted).

What it is for: `compile_assert("assert math.isinf(f(x)) and heapq.nsmallest(2, xs) == g(xs)")` returns
a `SplitTest` whose `root` is the assert's expression with placeholders, and whose leaves are of three
kinds (`SplitTest.kinds`):
- "candidate": the candidate's own calls, `f(x)`, `g(xs)`, `Solution().two_sum(...)`, a candidate
  global `memo`. Only these run next to candidate code, and only their values come back, as plain data;
- "pure": sub-expressions that name no candidate name (`heapq.nsmallest(2, [5, 1, 3])`, `sys.maxsize`,
  `list(range(3))`, `''.join(...)`): evaluated as a whole on the pool's trusted worker, which never runs
  candidate code, with the real modules and builtins (a candidate defining `heapq` changes nothing);
- "trusted": a wrapper, method call, subscript or attribute applied to candidate values
  (`math.isinf(__leaf_0)`, `np.allclose(__leaf_0, [1, 2])`, `__leaf_0.isupper()`, `__leaf_0[1:]`,
  `sorted(__leaf_0.items())`): evaluated on the trusted worker AFTER the candidate run, on the decoded
  plain values (a str subclass with a lying `isupper` cannot even be sent).
Comparisons, `not`/`and`/`or`, arithmetic and a few builtins stay in the parent (`asserts.judge`),
with strict types. Names: a builtin name is the builtin; a standard-library module name (or `np`)
used with an attribute is that module; a name bound by a comprehension or lambda of the test is the
test's own; every other name is the candidate's.

Method calls on a candidate value: a method name that plain data has (str, list, tuple, dict, set,
int, float: `isupper`, `startswith`, `count`, `get`, `items`...) runs in trusted code on the plain
value; any other method name (`two_sum`, `push`) is the candidate's own method, a candidate call; so
is any method, attribute or item of an object the test builds with a capitalised candidate name
(`Calculator().add(2, 3)`, `LRUCache(2).get(1)`: a class, by convention).

Weak tests: a candidate call that depends on a variable of the test's own comprehension or lambda
(`all(f(x) == y for x, y in pairs)`) cannot be lifted out; the smallest trusted part around it is then
evaluated in the sandbox and only its plain result trusted: `SplitTest.weak` (reported per Verdict).

What it does NOT do: judge (see `asserts.py`) or run anything.
"""

from __future__ import annotations

import ast
import builtins
import functools
import sys
from dataclasses import dataclass, field

LEAF_PREFIX = "__leaf_"
BUILTIN_NAMES = frozenset(n for n in dir(builtins) if not n.startswith("_"))
MODULE_ALIASES = {"np": "numpy"}
TRUSTED_MODULES = frozenset(n for n in sys.stdlib_module_names if not n.startswith("_")) | {"numpy"} | set(
    MODULE_ALIASES)
PLAIN_TYPES = (str, list, tuple, dict, set, frozenset, int, float, bool)
PLAIN_METHODS = frozenset(n for t in PLAIN_TYPES for n in dir(t) if not n.startswith("_")) - {
    "real", "imag", "numerator", "denominator"}
PLAIN_ATTRS = frozenset({"real", "imag", "numerator", "denominator"})


class BadTest(ValueError):
    """The test itself is unusable (not one assert statement, unparsable...): a verifier error."""


@dataclass
class SplitTest:
    source: str
    root: ast.expr
    leaves: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # "candidate" | "pure" | "trusted", per leaf
    modules: set[str] = field(default_factory=set)  # modules the pure / trusted leaves name
    weak: bool = False

    @property
    def pure(self) -> list[bool]:
        return [kind == "pure" for kind in self.kinds]


@functools.lru_cache(maxsize=8192)  # the K candidates of a task share its tests; SplitTest is never mutated
def compile_assert(source: str) -> SplitTest:
    try:
        module = ast.parse(source.strip())
    except SyntaxError as exc:
        raise BadTest(f"test does not parse: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise BadTest("test too deeply nested to parse") from None
    if len(module.body) != 1 or not isinstance(module.body[0], ast.Assert):
        raise BadTest("each test must be exactly one assert statement")
    test = SplitTest(source=source, root=ast.Constant(None))
    expression = module.body[0].test
    bound = _bound_names(expression)
    modules = {id(s.value) for s in ast.walk(expression) if isinstance(s, ast.Attribute) and
               isinstance(s.value, ast.Name) and s.value.id in TRUSTED_MODULES and s.value.id not in bound}
    try:
        test.root = _Splitter(test, bound, modules).split(expression)
    except RecursionError:
        raise BadTest("test too deeply nested to split") from None
    return test


def _bound_names(node: ast.expr) -> frozenset[str]:
    """Names the test binds itself (comprehension targets, lambda arguments, walrus targets)."""
    bound: set[str] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.comprehension):
            bound |= {n.id for n in ast.walk(sub.target) if isinstance(n, ast.Name)}
        elif isinstance(sub, ast.Lambda):
            bound |= {a.arg for a in ast.walk(sub.args) if isinstance(a, ast.arg)}
        elif isinstance(sub, ast.NamedExpr):
            bound.add(sub.target.id)
    return frozenset(bound)


class _Splitter:
    def __init__(self, test: SplitTest, bound: frozenset[str], modules: set[int]):
        self.test, self.bound, self.modules = test, bound, modules  # modules: ids of Name nodes

    # ------------------------------------------------------------------------------ classification
    def is_module(self, node: ast.expr) -> bool:
        """A standard-library module (or `np`) named at the base of an attribute: the real one."""
        return isinstance(node, ast.Name) and id(node) in self.modules

    def candidate_names(self, node: ast.expr) -> bool:
        """Does `node` name anything of the candidate's?"""
        return any(isinstance(sub, ast.Name) and sub.id not in BUILTIN_NAMES and sub.id not in self.bound and
                   id(sub) not in self.modules for sub in ast.walk(node))

    def uses_bound(self, node: ast.expr) -> bool:
        return any(isinstance(s, ast.Name) and s.id in self.bound for s in ast.walk(node))

    def is_candidate_call(self, node: ast.expr) -> bool:
        """The candidate's own operation: a call of its function or method, one of its globals."""
        if isinstance(node, ast.Name):
            return self.candidate_names(node)
        if isinstance(node, ast.Attribute):
            return self.candidate_names(node.value) and not self.is_module(node.value) and (
                node.attr not in PLAIN_ATTRS or self.constructed(node.value))
        if isinstance(node, ast.Subscript):
            return self.constructed(node.value)
        if not isinstance(node, ast.Call) or not self.candidate_names(node.func):
            return False
        func = node.func
        if isinstance(func, ast.Attribute):  # a plain-data method runs trusted, on the plain value
            return func.attr not in PLAIN_METHODS or self.constructed(func.value)
        return True

    def constructed(self, node: ast.expr) -> bool:
        """`Calculator(...)`: a candidate name with a capital (a class, by convention) called in the
        test builds the candidate's object, so its methods (even `add`, `get`), attributes and items
        are the candidate's own code, as the test asks."""
        return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id[:1].isupper() \
            and self.candidate_names(node.func)

    # ------------------------------------------------------------------------------ splitting
    def split(self, node: ast.expr) -> ast.expr:
        if not self.candidate_names(node):
            return node if _parent_evaluates(node) else self.leaf(node, "pure")
        if self.is_candidate_call(node):
            self.test.weak |= self.uses_bound(node)  # (a variable the test binds elsewhere: unusual)
            return self.leaf(node, "candidate")
        if isinstance(node, (ast.Compare, ast.BoolOp)) or \
                isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not) or not self.needs_trusted(node) or \
                isinstance(node, ast.Call) and call_name(node) == "type" and _parent_op(node):  # a type object
            return self.split_children(node)  # is no plain data: type() stays here, its argument may not
        try:
            inner = self.lift_calls(node)
        except _NeedsSandbox:
            self.test.weak = True
            return self.leaf(node, "candidate")
        return self.leaf(inner, "trusted")

    def split_children(self, node: ast.expr) -> ast.expr:
        for name, value in ast.iter_fields(node):
            if isinstance(value, ast.expr) and name != "func":
                setattr(node, name, self.split(value))
            elif isinstance(value, list):
                setattr(node, name, [self.split(v) if isinstance(v, ast.expr) else v for v in value])
        for keyword in getattr(node, "keywords", []):
            keyword.value = self.split(keyword.value)
        return node

    def needs_trusted(self, node: ast.expr) -> bool:
        """Is there an operation (outside the candidate's calls) that the parent does not evaluate?"""
        if not self.candidate_names(node) or self.is_candidate_call(node):
            return False
        if not _parent_op(node):
            return True
        return any(self.needs_trusted(child) for child in _operands(node))

    def lift_calls(self, node: ast.expr) -> ast.expr:
        """A copy of `node` whose candidate calls are placeholders (candidate leaves); raises
        _NeedsSandbox if one depends on a variable bound inside the test."""
        if self.is_candidate_call(node):
            if self.uses_bound(node):
                raise _NeedsSandbox
            return self.leaf(node, "candidate")
        if not self.candidate_names(node):
            self.note_modules(node)
            return node
        self.note_modules(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):  # a trusted method: keep
            node.func.value = self.lift_calls(node.func.value)  # its name, lift what it is called on
            node.args = [self.lift_calls(a) for a in node.args]
            node.keywords = [self._lift_any(k) for k in node.keywords]
            return node
        for name, value in ast.iter_fields(node):
            if isinstance(value, ast.AST) and not isinstance(value, (ast.expr_context, ast.operator)):
                setattr(node, name, self.lift_calls(value) if isinstance(value, ast.expr) else self._lift_any(value))
            elif isinstance(value, list):
                setattr(node, name, [self.lift_calls(v) if isinstance(v, ast.expr) else self._lift_any(v)
                                     for v in value])
        return node

    def _lift_any(self, node):
        if isinstance(node, (ast.comprehension, ast.keyword)):
            for name, value in ast.iter_fields(node):
                if isinstance(value, ast.expr):
                    setattr(node, name, self.lift_calls(value))
                elif isinstance(value, list):
                    setattr(node, name, [self.lift_calls(v) if isinstance(v, ast.expr) else v for v in value])
        return node

    def note_modules(self, node: ast.expr) -> None:
        self.test.modules |= {s.value.id for s in ast.walk(node) if isinstance(s, ast.Attribute) and
                              self.is_module(s.value)}

    def leaf(self, node: ast.expr, kind: str) -> ast.expr:
        if kind == "pure":
            self.note_modules(node)
        self.test.leaves.append(ast.unparse(node))
        self.test.kinds.append(kind)
        return ast.Name(id=f"{LEAF_PREFIX}{len(self.test.leaves) - 1}", ctx=ast.Load())


class _NeedsSandbox(Exception):
    """A candidate call inside the test's own comprehension/lambda: only the sandbox can evaluate it."""


# ----------------------------------------------------------------------------------------- the parent's part
TYPE_NAMES = frozenset({"int", "float", "str", "bool", "list", "tuple", "dict", "set", "frozenset"})
SAFE_CALL_KEYWORDS = {"sorted": {"reverse"}, "math.isclose": {"rel_tol", "abs_tol"}}
SAFE_CALL_NAMES = frozenset({"abs", "len", "round", "sorted", "set", "frozenset", "list", "tuple", "min", "max",
                             "sum", "all", "any", "isinstance", "type", "math.isclose", "math.fabs", "math.isinf",
                             "math.isnan", "math.isfinite", "math.floor", "math.ceil", "math.trunc"})
PARENT_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)


def call_name(node: ast.Call) -> str | None:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return None


def _parent_op(node: ast.expr) -> bool:
    """The node's own operation is one `asserts.judge` evaluates (its operands may be anything)."""
    if isinstance(node, (ast.Constant, ast.Compare, ast.BoolOp)):
        return True
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return not any(isinstance(e, ast.Starred) for e in node.elts)
    if isinstance(node, ast.Dict):
        return None not in node.keys
    if isinstance(node, ast.UnaryOp):
        return isinstance(node.op, (ast.Not, ast.USub, ast.UAdd))
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, PARENT_BINOPS)
    if isinstance(node, ast.Name):
        return node.id in TYPE_NAMES
    if isinstance(node, ast.Call):
        name = call_name(node)
        return name in SAFE_CALL_NAMES and not any(isinstance(a, (ast.Starred, ast.GeneratorExp, ast.Lambda))
                                                    for a in node.args) and \
            all(k.arg in SAFE_CALL_KEYWORDS.get(name, ()) for k in node.keywords)
    return False


def _operands(node: ast.expr) -> list[ast.expr]:
    found = [v for name, v in ast.iter_fields(node) if isinstance(v, ast.expr) and name != "func"]
    for name, value in ast.iter_fields(node):
        if isinstance(value, list):
            found += [v for v in value if isinstance(v, ast.expr)]
    return found + [k.value for k in getattr(node, "keywords", [])]


def _parent_evaluates(node: ast.expr) -> bool:
    """A name-free (or builtin-only) expression the parent evaluates itself: literals, containers,
    arithmetic and the parent's builtins all the way down; anything else is a pure leaf."""
    return _parent_op(node) and not (isinstance(node, ast.Name) and node.id not in TYPE_NAMES) and \
        all(_parent_evaluates(child) for child in _operands(node))
