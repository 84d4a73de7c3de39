"""Plain-data values across the sandbox boundary, and type-strict equality in the trusted parent.

What it is for: the sandbox turns the value of each test expression into JSON text with `encode`
(only None, bool, int, float, complex, str, list, tuple, dict, set, frozenset are accepted, checked with
`type(x) is T`, so subclasses and objects with a custom `__eq__` are refused); the parent checks the
reply's size (`check_reply`), turns the text back into fresh values with `decode` / `from_plain`
and compares them with `strict_equal` (`1 != True`, `1 != 1.0`, `(1,) != [1]`, `{1} != frozenset({1})`;
floats compare as Python's `==` does: `-0.0 == 0.0`, NaN equals nothing).

JSON carries None/bool/int/float/str natively (and keeps 1 and 1.0 apart); containers are tagged:
{"l": [...]} list, {"t": [...]} tuple, {"d": [[k, v], ...]} dict, {"S": [...]} set, {"F": [...]}
frozenset, and {"c": [re, im]} a complex number (two floats). numpy arrays and scalars (numpy's own
types) are sent as their `.tolist()` / `.item()`. A JSON object of any other shape is a protocol error.

No untrusted value is ever hashed in the parent. Decoded (and parent-built) sets and dicts are
`PlainSet` / `PlainDict`: their elements are kept sorted by a canonical, totally ordered form
(`canonical`: a type tag plus payload, containers recursively, sets/dicts as sorted tuples), built
with one O(n log n) sort; duplicates are found among neighbours of a second sort by `loose_key`
(Python's own notion of "same set element": 1, 1.0 and True collide). Equality compares canonical
forms; membership is a binary search. A reply that makes many elements share one hash (which would
make a real set/dict quadratic) therefore costs the same as any other reply of its size.

Caps (a hostile reply is refused in milliseconds, before or while decoding): MAX_ELEMENTS values per
reply (counted from the text before parsing, then exactly while decoding), MAX_DEPTH nesting,
MAX_INT_DIGITS digits per int; the byte cap is the sandbox's result-channel cap.

What it does NOT do: trust the encoder. The encoder runs next to candidate code, which may replace
it; the decoder in the parent is the enforcement point and builds nothing but builtin scalars, lists,
tuples and the two sorted containers here. It imports only the standard library (it runs inside the
sandbox too).
"""

from __future__ import annotations

import bisect
import itertools
import json
import operator
import re
import sys
from typing import Any, Iterable, Iterator

MAX_DEPTH = 100
MAX_ELEMENTS = 200_000  # values (scalars and containers) in one job's reply
MAX_INT_DIGITS = 4300  # Python's own default int/str conversion limit, enforced whatever the host set
_CONTAINERS = {list: "l", tuple: "t", set: "S", frozenset: "F"}
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_SCALARS = frozenset({type(None), bool, int, float, str})
_FIRST, _SECOND = operator.itemgetter(0), operator.itemgetter(1)


class NotPlainData(TypeError):
    """The value is not made only of plain builtin data."""


class ProtocolError(ValueError):
    """Text from the sandbox that is not a well-formed encoded value, or one over the caps."""


# ----------------------------------------------------------------------------------------- sandbox side
def encode(value: Any) -> str:
    return json.dumps(to_plain(value, 0), allow_nan=True)


def to_plain(value: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise NotPlainData("value nested too deeply")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind in _CONTAINERS:
        return {_CONTAINERS[kind]: [to_plain(v, depth + 1) for v in value]}
    if kind is dict:
        return {"d": [[to_plain(k, depth + 1), to_plain(v, depth + 1)] for k, v in value.items()]}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    if kind is PlainSet:
        return {_CONTAINERS[value.kind]: [to_plain(v, depth + 1) for v in value]}
    if kind is PlainDict:
        return {"d": [[to_plain(k, depth + 1), to_plain(v, depth + 1)] for k, v in value.items()]}
    if kind.__module__ == "numpy":  # numpy's own types only (a subclass lives in another module)
        return to_plain(_from_numpy(value, kind), depth)
    raise NotPlainData(f"{kind.__name__} is not plain data (None/bool/int/float/str/list/tuple/dict/set)")


def _from_numpy(value: Any, kind: type) -> Any:
    """A numpy array as its .tolist(), a numpy scalar as its .item() (the exact numpy methods)."""
    numpy = sys.modules.get("numpy")
    if numpy is not None and kind is numpy.ndarray:
        return numpy.ndarray.tolist(value)
    if numpy is not None and isinstance(value, numpy.generic):
        return numpy.generic.item(value)
    raise NotPlainData(f"numpy {kind.__name__} is not plain data")


def to_python(raw: Any, depth: int = 0) -> Any:
    """Real Python values from the JSON form (in the trusted worker, which runs no candidate code:
    wrappers there get real lists, dicts and sets)."""
    if raw is None or type(raw) in _SCALARS:
        return raw
    if depth >= MAX_DEPTH or type(raw) is not dict or len(raw) != 1:
        raise ProtocolError("not an encoded value")
    (tag, items), = raw.items()
    if tag == "d":
        return {to_python(k, depth + 1): to_python(v, depth + 1) for k, v in items}
    if tag == "c":
        return complex(*items)
    builder = {"l": list, "t": tuple, "S": set, "F": frozenset}.get(tag)
    if builder is None or type(items) is not list:
        raise ProtocolError(f"unknown tag {tag!r}")
    return builder(to_python(v, depth + 1) for v in items)


# ----------------------------------------------------------------------------------------- parent side
def check_reply(text: str) -> None:
    """Refuse a reply with more than MAX_ELEMENTS values before any parsing (C-speed counts only).

    In our encoding a reply of V values on L lines has at most 2V + L characters '[' or ',' outside
    strings (a value follows at most one of them, an empty container adds its own '[', a dict pair
    costs three for two values, a line one ','). Characters inside strings only inflate that count;
    only then are strings stripped and the count redone, and only when there are few enough quotes
    for V values (2 per string or container tag, 4 per line; slack for escaped ones) for that to be cheap."""
    lines = text.count("\n") + 1
    limit = 2 * MAX_ELEMENTS + lines
    if text.count("[") + text.count(",") <= limit:
        return
    escaped = '\\"' in text
    if text.count('"') > (5 if escaped else 2) * MAX_ELEMENTS + 4 * lines:
        raise ProtocolError(f"reply has more than {MAX_ELEMENTS} values")
    if escaped:
        bare = _STRING.sub('""', text)
    else:  # every other piece between quotes is outside strings
        bare = "".join(text.split('"')[0::2])
    if bare.count("[") + bare.count(",") > limit:
        raise ProtocolError(f"reply has more than {MAX_ELEMENTS} values")


def loads(text: str) -> Any:
    """json.loads with an int digit cap (whatever sys.set_int_max_str_digits says in this process).

    Under Python's default limit (4300 digits) the interpreter refuses a longer int before converting
    it; where the host raised or removed that limit, each int is checked here first."""
    try:
        if 0 < sys.get_int_max_str_digits() <= MAX_INT_DIGITS:
            return json.loads(text)  # the interpreter refuses longer ints itself, before converting
        return json.loads(text, parse_int=_bounded_int)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {str(exc)[:100]}") from None


def _bounded_int(digits: str) -> int:
    if len(digits) > MAX_INT_DIGITS + 1:
        raise ProtocolError(f"int with more than {MAX_INT_DIGITS} digits")
    return int(digits)


def decode(text: str) -> Any:
    check_reply(text)
    return from_plain(loads(text), 0)


class OverCap(ProtocolError):
    """A reply over a size cap (elements): refused as a whole."""


class Budget:
    """How many more values a reply may decode into (shared by all lines of one reply)."""

    def __init__(self, limit: int = MAX_ELEMENTS):
        self.left = limit

    def spend(self, n: int = 1) -> None:
        self.left -= n
        if self.left < 0:
            raise OverCap(f"reply has more than {MAX_ELEMENTS} values")


def from_plain(raw: Any, depth: int = 0, budget: Budget | None = None) -> Any:
    """Fresh values from one decoded JSON value. Each container spends its length from `budget`
    before anything in it is looked at, so an oversized reply is refused before it is walked."""
    if budget is None:
        budget = Budget()
        budget.spend()
    if raw is None or type(raw) in _SCALARS:
        return raw
    if depth >= MAX_DEPTH:
        raise ProtocolError(f"value nested deeper than {MAX_DEPTH}")
    if type(raw) is not dict or len(raw) != 1:
        raise ProtocolError("untagged container")
    (tag, items), = raw.items()
    if type(items) is not list:
        raise ProtocolError("tag without a list")
    budget.spend(len(items) * (2 if tag == "d" else 1))
    if tag == "c":  # a complex number: exactly two floats
        if len(items) != 2 or set(map(type, items)) != {float}:
            raise ProtocolError("bad complex")
        return complex(*items)
    if tag == "d":
        if set(map(type, items)) - {list} or set(map(len, items)) - {2}:
            raise ProtocolError("bad dict item")
        keys, values = list(map(_FIRST, items)), list(map(_SECOND, items))
        if set(map(type, keys)) <= _SCALARS and set(map(type, values)) <= _SCALARS:
            pairs = list(zip(keys, values))
        else:
            pairs = [(from_plain(k, depth + 1, budget), from_plain(v, depth + 1, budget)) for k, v in items]
        return _checked(make_dict, pairs, unique=True)
    if set(map(type, items)) <= _SCALARS:  # the common case: no container inside, nothing to rebuild
        decoded = items
    else:
        decoded = [from_plain(v, depth + 1, budget) for v in items]
    if tag == "l":
        return decoded
    if tag == "t":
        return tuple(decoded)
    if tag in ("S", "F"):
        return _checked(make_set, set if tag == "S" else frozenset, decoded, unique=True)
    raise ProtocolError(f"unknown tag {tag!r}")


def _checked(build, *args, **kwargs):
    try:
        return build(*args, **kwargs)
    except TypeError as exc:  # e.g. a set of lists
        raise ProtocolError(str(exc)) from None


# ----------------------------------------------------------------------------------------- canonical forms
_NONE, _BOOL, _INT, _FLOAT, _STR, _LIST, _TUPLE, _SET, _FROZENSET, _DICT, _COMPLEX = range(11)
_NUMBER = _INT  # loose keys: bool, int and float share one class, as in Python's sets
_nan_ids = itertools.count()


def canonical(value: Any) -> tuple:
    """A totally ordered, type-tagged form: canonical(a) == canonical(b) iff a and b are strictly equal.

    Scalars: (tag, value); NaN gets a fresh id every time (it equals nothing, itself included, as
    Python's `==` on separately computed values); -0.0 and 0.0 are equal. Lists and tuples: (tag,
    tuple of canonical forms). Sets and dicts carry their (already sorted) forms. Never hashes."""
    kind = type(value)
    if value is None:
        return (_NONE,)
    if kind is bool:
        return (_BOOL, value)
    if kind is int:
        return (_INT, value)
    if kind is float:
        return (_FLOAT, 0, value) if value == value else (_FLOAT, 1, next(_nan_ids))
    if kind is str:
        return (_STR, value)
    if kind is complex:
        return (_COMPLEX, 0, value.real, value.imag) if value == value else (_COMPLEX, 1, next(_nan_ids))
    if kind is list:
        return (_LIST, tuple(map(canonical, value)))
    if kind is tuple:
        return (_TUPLE, tuple(map(canonical, value)))
    if kind is PlainSet or kind is PlainDict:
        return value.canon
    if kind in (set, frozenset, dict):  # a real one exists only if made by trusted code: convert it
        return from_plain(to_plain(value), 0, Budget(1 << 62)).canon
    raise NotPlainData(f"{kind.__name__} is not plain data")


def loose_key(value: Any) -> tuple:
    """Python's set-element identity, totally ordered: loose_key(a) == loose_key(b) iff a == b for
    hashable plain values (1 == 1.0 == True, -0.0 == 0.0, NaN unique). TypeError if unhashable."""
    kind = type(value)
    if value is None:
        return (_NONE,)
    if kind is bool or kind is int:
        return (_NUMBER, value)
    if kind is float:
        return (_NUMBER, value) if value == value else (_FLOAT, next(_nan_ids))
    if kind is complex:  # 2+0j is the set element 2, as in Python
        if value != value:
            return (_FLOAT, next(_nan_ids))
        return (_NUMBER, value.real) if value.imag == 0 else (_COMPLEX, value.real, value.imag)
    if kind is str:
        return (_STR, value)
    if kind is tuple:
        return (_TUPLE, tuple(map(loose_key, value)))
    if kind is PlainSet and value.kind is frozenset:
        return (_FROZENSET, tuple(sorted(map(loose_key, value.items))))
    if kind is frozenset:  # made by trusted code
        return loose_key(from_plain(to_plain(value), 0, Budget(1 << 62)))
    name = {PlainSet: "set", PlainDict: "dict"}.get(kind, kind.__name__)
    raise TypeError(f"unhashable type: '{name}'")


def strict_equal(a: Any, b: Any) -> bool:
    """Python `==` restricted to identical types at every level (NaN is never equal, as in Python)."""
    kind = type(a)
    if kind is type(b) and kind in (bool, int, float, str):
        return a == b
    return canonical(a) == canonical(b)


def _groups(keys: list[tuple], unique: bool) -> list[list[int]] | None:
    """Indices grouped by equal key, each group in input order; None when all keys differ (the usual
    case, found with one sort and a C-speed neighbour check). unique=True refuses duplicates."""
    order = sorted(range(len(keys)), key=keys.__getitem__)
    ordered = list(map(keys.__getitem__, order))
    if not any(map(operator.eq, ordered, ordered[1:])):
        return None
    if unique:
        raise ProtocolError("duplicate set element or dict key")
    groups: list[list[int]] = []
    for index, key in zip(order, ordered):
        if groups and keys[groups[-1][0]] == key:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


def _canonical_forms(values: list) -> list[tuple]:
    return [(_INT, v) if t is int else (_STR, v) if t is str else canonical(v)  # inline: the common cases
            for v, t in zip(values, map(type, values))]


def _canonical_order(values: list) -> tuple[list[int], list[tuple]]:
    """Indices of `values` in canonical order, and their canonical forms in that order."""
    canons = _canonical_forms(values)
    order = sorted(range(len(values)), key=canons.__getitem__)
    return order, list(map(canons.__getitem__, order))


class PlainSet:
    """A set or frozenset of plain values, kept sorted by canonical form (never hashes its elements)."""

    __slots__ = ("kind", "items", "canons", "canon")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, kind: type, items: list, canons: list[tuple]):
        self.kind, self.items, self.canons = kind, tuple(items), canons
        self.canon = (_SET if kind is set else _FROZENSET, tuple(canons))

    def __iter__(self) -> Iterator:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: Any) -> bool:
        return _sorted_contains(self.canons, canonical(item))

    def __eq__(self, other: Any) -> bool:
        return type(other) is PlainSet and self.canon == other.canon

    def __repr__(self) -> str:
        inner = ", ".join(map(repr, self.items))
        if self.kind is set:
            return "{" + inner + "}" if self.items else "set()"
        return f"frozenset({{{inner}}})" if self.items else "frozenset()"


class PlainDict:
    """A dict of plain values in insertion order (as Python iterates it), looked up and compared by
    the sorted canonical forms of its keys (never hashes a key)."""

    __slots__ = ("keys", "values", "key_canons", "canon")
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, keys: list, values: list, key_canons: list[tuple], value_canons: list[tuple]):
        """keys, values: insertion order; key_canons and value_canons: sorted by key canon."""
        self.keys, self.values, self.key_canons = tuple(keys), tuple(values), key_canons
        self.canon = (_DICT, tuple(zip(key_canons, value_canons)))

    def items(self) -> Iterator[tuple]:
        return zip(self.keys, self.values)

    def __iter__(self) -> Iterator:
        return iter(self.keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: Any) -> bool:
        return _sorted_contains(self.key_canons, canonical(key))

    def __eq__(self, other: Any) -> bool:
        return type(other) is PlainDict and self.canon == other.canon

    def __repr__(self) -> str:
        return "{" + ", ".join(f"{k!r}: {v!r}" for k, v in self.items()) + "}"


def _sorted_contains(canons: list[tuple], wanted: tuple) -> bool:
    at = bisect.bisect_left(canons, wanted)
    return at < len(canons) and canons[at] == wanted


def _loose_keys(values: list) -> list[tuple]:
    return [(_NUMBER, v) if t is int else (_STR, v) if t is str else loose_key(v)  # inline: the common cases
            for v, t in zip(values, map(type, values))]


def make_set(kind: type, items: Iterable, unique: bool = False) -> PlainSet:
    """`set(items)` / `frozenset(items)` without hashing: the first of equal elements is kept (as
    Python does); unique=True (a decoded reply) refuses duplicates instead, as no real set has them."""
    items = list(items)
    groups = _groups(_loose_keys(items), unique)
    keep = items if groups is None else [items[g[0]] for g in groups]
    order, canons = _canonical_order(keep)
    return PlainSet(kind, list(map(keep.__getitem__, order)), canons)


def make_dict(pairs: Iterable[tuple], unique: bool = False) -> PlainDict:
    """`dict(pairs)` without hashing: the first of equal keys is kept with the last value (as Python)."""
    pairs = list(pairs)
    groups = _groups(_loose_keys([k for k, _ in pairs]), unique)
    if groups is not None:
        groups.sort(key=_FIRST)  # Python's order: where each key first appeared
        pairs = [(pairs[g[0]][0], pairs[g[-1]][1]) for g in groups]
    keys, values = [k for k, _ in pairs], [v for _, v in pairs]
    order, key_canons = _canonical_order(keys)
    return PlainDict(keys, values, key_canons, _canonical_forms([values[i] for i in order]))


def type_of(value: Any) -> type:
    """The builtin type a value stands for (PlainSet -> set/frozenset, PlainDict -> dict)."""
    kind = type(value)
    if kind is PlainSet:
        return value.kind
    return dict if kind is PlainDict else kind


def describe(value: Any, limit: int = 120) -> str:
    """Short repr for verdict details."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
