"""The trusted parent's value handling (verifiers.code.values): canonical, hash-free equality that says
what Python's `==` says on honest values, and hostile replies refused in milliseconds as failed tests."""

import json
import math
import random
import textwrap
import time

import pytest

from verifiers.code import SandboxConfig, SandboxPool, verify
from verifiers.code.harness import parse_results
from verifiers.code.values import (MAX_ELEMENTS, PlainDict, PlainSet, ProtocolError, decode, encode, make_dict,
                                   make_set, strict_equal)

STRICT_ATOMS = [None, True, False, 0, 1, -1, 2, 10 ** 30, 0.0, -0.0, 1.0, 2.0, "nan", math.inf, -math.inf, 1e300,
                "", "a", "b", "1"]
PLAIN_ATOMS = {  # no int/float/bool mixing: here the strict policy and plain `==` must agree exactly
    "int": [None, 0, 1, -1, 2, 10 ** 30, "", "a", "1"],
    "float": [None, 0.0, -0.0, 1.0, 2.0, "nan", math.inf, -math.inf, "", "a"],
    "bool": [None, True, False, "", "a"],
}


def atom(rng, atoms):
    value = rng.choice(atoms)
    return float("nan") if value == "nan" else value  # a fresh NaN object each time


def gen(rng, atoms, depth, hashable, plain):
    """A random honest value, built by Python itself (so its sets/dicts are what Python makes)."""
    if depth <= 0 or rng.random() < 0.35:
        return atom(rng, atoms)
    n = rng.randrange(0, 4)
    kinds = ["tuple", "frozenset"] if hashable else ["list", "tuple", "set", "dict"]
    kind = rng.choice(kinds)
    if kind == "set" and plain and hashable:
        kind = "frozenset"
    if kind == "list":
        return [gen(rng, atoms, depth - 1, False, plain) for _ in range(n)]
    if kind == "tuple":
        return tuple(gen(rng, atoms, depth - 1, hashable, plain) for _ in range(n))
    if kind in ("set", "frozenset"):
        return (set if kind == "set" else frozenset)(gen(rng, atoms, depth - 1, True, plain) for _ in range(n))
    return {gen(rng, atoms, depth - 1, True, plain): gen(rng, atoms, depth - 1, False, plain) for _ in range(n)}


def variant(rng, value, atoms):
    """A copy of `value` (fresh NaNs) with occasional small changes: often equal, often nearly equal."""
    if rng.random() < 0.08:
        return atom(rng, atoms) if type(value) not in (list, tuple, set, frozenset, dict) else \
            type(value)(list(value)[:-1]) if type(value) is not dict else dict(list(value.items())[:-1])
    kind = type(value)
    if kind in (bool, int, float) and value in (0, 1) and rng.random() < 0.1 and atoms is STRICT_ATOMS:
        return rng.choice([[0, 0.0, -0.0, False], [1, 1.0, True]][value == 1])  # numerically equal, other type
    if kind is float:
        return float("nan") if value != value else value
    if kind in (list, tuple):
        items = [variant(rng, v, atoms) for v in value]
        if kind is list and rng.random() < 0.03:
            return tuple(items)
        return kind(items)
    if kind in (set, frozenset):
        items = list(value)
        rng.shuffle(items)  # insertion order must not matter
        return kind(variant(rng, v, atoms) for v in items)
    if kind is dict:
        items = list(value.items())
        rng.shuffle(items)
        return {variant(rng, k, atoms): variant(rng, v, atoms) for k, v in items}
    return value


def tagged(value):
    """Python `==` on this form is Python `==` with the types required to match at every level."""
    kind = type(value)
    if kind in (list, tuple):
        return (kind.__name__, tuple(tagged(v) for v in value))
    if kind in (set, frozenset):
        return (kind.__name__, frozenset(tagged(v) for v in value))
    if kind is dict:
        return ("dict", frozenset((tagged(k), tagged(v)) for k, v in value.items()))
    return (kind.__name__, value)


def roundtrip(value):
    return decode(encode(value))


def pairs(seed, atoms, plain, count):
    rng = random.Random(seed)
    for _ in range(count):
        a = gen(rng, atoms, 4, False, plain)
        b = variant(rng, a, atoms) if rng.random() < 0.8 else gen(rng, atoms, 4, False, plain)
        yield a, b


@pytest.mark.parametrize("mode", sorted(PLAIN_ATOMS))
def test_canonical_equality_is_python_equality_on_honest_values(mode):
    """Without int/float/bool mixing at one position, strict equality is exactly Python's `==`
    (NaN, -0.0, inf, big ints, nesting, set/dict insertion order)."""
    equal_seen = 0
    for a, b in pairs(sorted(PLAIN_ATOMS).index(mode), PLAIN_ATOMS[mode], True, 1500):
        expected = a == b
        equal_seen += expected
        assert strict_equal(roundtrip(a), roundtrip(b)) is expected, (a, b)
    assert 200 < equal_seen < 1400  # the generator exercises both outcomes


def test_canonical_equality_is_type_strict_python_equality():
    """With mixing (1, 1.0, True; set vs frozenset; list vs tuple), the verdict is Python's `==` with
    types required to match at every level: the documented strict policy."""
    differs_from_plain = 0
    for a, b in pairs(7, STRICT_ATOMS, False, 3000):
        expected = tagged(a) == tagged(b)
        differs_from_plain += expected != (a == b)
        assert strict_equal(roundtrip(a), roundtrip(b)) is expected, (a, b)
    assert differs_from_plain > 10  # mixing really happened


def test_sets_and_dicts_built_in_the_parent_follow_python():
    rng = random.Random(3)
    for _ in range(2000):
        items = [gen(rng, STRICT_ATOMS, 2, True, False) for _ in range(rng.randrange(6))]
        other = [variant(rng, v, STRICT_ATOMS) for v in reversed(items)]
        mine, theirs = [roundtrip(v) for v in items], [roundtrip(v) for v in other]  # as the parent holds them
        assert strict_equal(make_set(set, mine), make_set(set, theirs)) is (tagged(set(items)) == tagged(set(other)))
        if "nan" in repr(items):
            continue  # NaN equals nothing: the two sides below would differ for that reason alone
        assert strict_equal(make_set(set, mine), roundtrip(set(items)))  # first of equal elements kept
        values = [gen(rng, STRICT_ATOMS, 1, False, False) for _ in items]
        if "nan" in repr(values):
            continue
        built = make_dict(list(zip(mine, [roundtrip(v) for v in values])))
        assert strict_equal(built, roundtrip(dict(zip(items, values))))  # first key, last value, as Python


def test_specific_float_and_type_cases():
    nan = float("nan")
    assert strict_equal(-0.0, 0.0) and strict_equal([-0.0], [0.0]) and strict_equal(roundtrip({-0.0}), make_set(set, [0.0]))
    assert not strict_equal(nan, nan) and not strict_equal(roundtrip([nan]), roundtrip([nan]))
    assert not strict_equal(1, 1.0) and not strict_equal(1, True) and not strict_equal((1,), [1])
    assert not strict_equal(roundtrip({1}), roundtrip(frozenset({1})))
    assert strict_equal(roundtrip({(1, "a"): [2.5]}), make_dict([((1, "a"), [2.5])]))
    assert 2 ** 70 in roundtrip({2 ** 70, 3}) and 3.0 not in roundtrip({2 ** 70, 3})
    assert repr(roundtrip({2, 1})) == "{1, 2}" and repr(roundtrip(frozenset())) == "frozenset()"
    assert repr(roundtrip({"k": None})) == "{'k': None}"
    assert type(roundtrip({1})) is PlainSet and type(roundtrip({})) is PlainDict


@pytest.mark.parametrize("plain", [
    {"S": [1, 1]}, {"S": [1, 1.0]}, {"S": [True, 1]}, {"d": [[1, 2], [1.0, 3]]}, {"S": [{"l": []}]},
    {"d": [[{"S": []}, 1]]}, {"x": []}, {"l": 3}, {"l": [], "t": []},
])
def test_malformed_or_impossible_containers_are_refused(plain):
    with pytest.raises(ProtocolError):
        decode(json.dumps(plain))


def _line(value_text):
    return '{"i": 0, "v": ' + value_text + '}\n'


HOSTILE = {
    "deep nesting": _line('{"l": [' * 50_000 + "]}" * 50_000),
    "just past the depth cap": _line('{"l": [' * 150 + "]}" * 150),
    "1e6 tiny elements": _line('{"l": [' + ",".join(["0"] * 1_000_000) + "]}"),
    "1e6 tiny strings": _line('{"l": [' + ",".join(['"a"'] * 1_000_000) + "]}"),
    "3e5 empty containers": _line('{"l": [' + ",".join(['{"t": []}'] * 300_000) + "]}"),
    "elements over many lines": "".join('{"i": %d, "v": {"l": [%s]}}\n' % (i, ",".join(["0"] * 70_000))
                                        for i in range(4)),
    "a huge int": _line("9" * 1_000_000),
    "many program_error lines": '{"program_error": "x"}\n' * 300_000,
    "colliding hashes": _line('{"S": [' + ",".join(str(k * (2 ** 61 - 1)) for k in range(1, 60_001)) + "]}"),
    "colliding dict keys": _line('{"d": [' + ",".join(f"[{k * (2 ** 61 - 1)}, 0]" for k in range(1, 60_001)) + "]}"),
}


def _timed(fn, *args):
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_reply_is_refused_in_milliseconds(name):
    text = HOSTILE[name]
    start = time.perf_counter()
    results, problem = parse_results(text, 4, False)
    elapsed = time.perf_counter() - start
    refused = problem is not None or all(outcome == "error" for outcome, _ in results.values())
    if name.startswith("colliding"):  # within the caps: decoded in O(n log n), no hashing
        assert results[0][0] == "value" and len(results[0][1]) == 60_000
        elapsed = min(elapsed, *(_timed(parse_results, text, 4, False) for _ in range(2)))  # best of 3: load
        parse_only = min(_timed(json.loads, text) for _ in range(3))  # the same machine, now: this CPU
        assert elapsed < 20 * parse_only + 0.2, (elapsed, parse_only)  # a real set/dict: minutes
    else:
        assert refused, (problem, results)
        assert elapsed < 0.3, elapsed  # milliseconds, with slack for a loaded machine


def test_reply_just_under_the_element_cap_decodes():
    n = MAX_ELEMENTS - 10
    results, problem = parse_results(_line('{"l": [' + ",".join(["7"] * n) + "]}"), 1, False)
    assert problem is None and len(results[0][1]) == n


def test_string_with_many_commas_is_not_mistaken_for_many_elements():
    text = _line(json.dumps("a," * (2 * MAX_ELEMENTS)))
    results, problem = parse_results(text, 1, False)
    assert problem is None and results[0] == ("value", "a," * (2 * MAX_ELEMENTS))


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(SandboxConfig(size=1))
    verify("def f():\n    return 1\n", ["assert f() == 1"], pool=p)  # started before anything is timed
    yield p
    p.close()


@pytest.mark.parametrize("payload", ["deep", "many", "bigint", "collide"])
def test_hostile_reply_through_verify_is_a_failed_test(pool, payload):
    program = textwrap.dedent(f"""
        import os
        kind = {payload!r}
        if kind == "deep":
            v = '{{"l": [' * 20000 + ']}}' * 20000
        elif kind == "many":
            v = '{{"l": [' + ",".join(["0"] * 1000000) + ']}}'
        elif kind == "bigint":
            v = "9" * 100000
        else:
            v = '{{"S": [' + ",".join(str(k * (2 ** 61 - 1)) for k in range(1, 40001)) + ']}}'
        os.write(3, ('{{"i": 0, "v": ' + v + '}}\\n').encode())
        os._exit(0)
    """)
    start = time.perf_counter()
    v = verify(program, ["assert f() == {1, 2}", "assert set(f()) == {1}"], timeout=5.0, pool=pool)
    assert v.error is None and not v.passed, v
    assert time.perf_counter() - start - v.details["duration_s"] < 1.0  # the parent's share: decoding, judging
    assert sum(r["passed"] for r in v.details["tests"]) == 0
