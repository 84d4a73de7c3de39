"""Plain-data values across the sandbox boundary, and type-strict equality in the trusted parent.

What it is for: the sandbox turns the value of each test expression into JSON text with `encode`
(only None, bool, int, float, str, list, tuple, dict, set, frozenset are accepted, checked with
`type(x) is T`, so subclasses and objects with a custom `__eq__` are refused); the parent turns that
text back into fresh builtin values with `decode` and compares them with `strict_equal`
(`1 != True`, `1 != 1.0`, `(1,) != [1]`; floats compare exactly, as Python's `==` does).

JSON carries None/bool/int/float/str natively (and keeps 1 and 1.0 apart); containers are tagged:
{"l": [...]} list, {"t": [...]} tuple, {"d": [[k, v], ...]} dict, {"S": [...]} set, {"F": [...]}
frozenset. A JSON object of any other shape is a protocol error.

What it does NOT do: trust the encoder. The encoder runs next to candidate code, which may replace
it; the decoder in the parent is the enforcement point and builds nothing but builtin values.
It imports only the standard library (it runs inside the sandbox too).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 100
MAX_SAME_HASH = 8  # distinct plain values sharing one hash are rare; many is a hash-flooding reply
_CONTAINERS = {list: "l", tuple: "t", set: "S", frozenset: "F"}
_BUILDERS = {"l": list, "t": tuple, "S": set, "F": frozenset}


class NotPlainData(TypeError):
    """The value is not made only of plain builtin data."""


class ProtocolError(ValueError):
    """Text from the sandbox that is not a well-formed encoded value."""


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
    raise NotPlainData(f"{kind.__name__} is not plain data (None/bool/int/float/str/list/tuple/dict/set)")


# ----------------------------------------------------------------------------------------- parent side
def decode(text: str) -> Any:
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    return from_plain(raw, 0)


def from_plain(raw: Any, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise ProtocolError("value nested too deeply")
    if raw is None or type(raw) in (bool, int, float, str):
        return raw
    if type(raw) is not dict or len(raw) != 1:
        raise ProtocolError("untagged container")
    (tag, items), = raw.items()
    if type(items) is not list:
        raise ProtocolError("tag without a list")
    if tag == "d":
        return _dict_from_plain(items, depth)
    if tag not in _BUILDERS:
        raise ProtocolError(f"unknown tag {tag!r}")
    try:
        decoded = [from_plain(v, depth + 1) for v in items]
        if tag in ("S", "F"):
            check_hashes(decoded)
        return _BUILDERS[tag](decoded)
    except TypeError as exc:  # e.g. a set of lists
        raise ProtocolError(str(exc)) from None


def _dict_from_plain(items: list, depth: int) -> dict:
    pairs = []
    for pair in items:
        if type(pair) is not list or len(pair) != 2:
            raise ProtocolError("bad dict item")
        pairs.append((from_plain(pair[0], depth + 1), from_plain(pair[1], depth + 1)))
    try:
        check_hashes([k for k, _ in pairs])
        return dict(pairs)
    except TypeError as exc:
        raise ProtocolError(str(exc)) from None


def check_hashes(items: list) -> None:
    """Refuse to build a set/dict whose elements flood one hash bucket (quadratic insertion).

    Sorting the hashes (ints) costs O(n log n) and never hashes a container twice; TypeError for
    unhashable elements propagates as in `set(...)`."""
    hashes = sorted(hash(v) for v in items)
    run = 1
    for previous, current in zip(hashes, hashes[1:]):
        run = run + 1 if previous == current else 1
        if run > MAX_SAME_HASH:
            raise ProtocolError(f"more than {MAX_SAME_HASH} elements share one hash (hash flooding)")


def strict_key(value: Any) -> Any:
    """A hashable stand-in for `value` that also records every type, so equal keys mean strictly equal."""
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return (kind.__name__, value)
    if kind in (list, tuple):
        return (kind.__name__, tuple(strict_key(v) for v in value))
    if kind in (set, frozenset):
        return (kind.__name__, frozenset(strict_key(v) for v in value))
    if kind is dict:
        return ("dict", frozenset((strict_key(k), strict_key(v)) for k, v in value.items()))
    raise NotPlainData(f"{kind.__name__} is not plain data")


def strict_equal(a: Any, b: Any) -> bool:
    """Python `==` restricted to identical types at every level (NaN is never equal, as in Python)."""
    if type(a) is float and type(b) is float:
        return a == b
    if _has_nan(a) or _has_nan(b):
        return False
    return strict_key(a) == strict_key(b)


def _has_nan(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return math.isnan(value)
    if kind in (list, tuple, set, frozenset):
        return any(_has_nan(v) for v in value)
    if kind is dict:
        return any(_has_nan(k) or _has_nan(v) for k, v in value.items())
    return False


def describe(value: Any, limit: int = 120) -> str:
    """Short repr for verdict details."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
