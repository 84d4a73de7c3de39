"""Parent-side logic of the code verifier, no sandbox: assert splitting, strict judging, the value codec."""

import math

import pytest

from verifiers.code.asserts import BadTest, CheckFailed, compile_assert, judge
from verifiers.code.harness import normalise_output, parse_results
from verifiers.code.values import NotPlainData, ProtocolError, decode, encode, strict_equal


def test_split_keeps_expected_value_in_parent():
    t = compile_assert("assert add(1, 2) == 3")
    assert t.leaves == ["add(1, 2)"] and not t.weak
    judge(t, [3])
    for wrong in (3.0, True, "3", [3], None):
        with pytest.raises(CheckFailed):
            judge(t, [wrong])


def test_split_tolerance_and_builtins_are_parent_side():
    t = compile_assert("assert abs(f(x) - 2.5) < 1e-6")
    assert t.leaves == ["f(x)"]
    judge(t, [2.5])
    judge(t, [2.5000000001])
    with pytest.raises(CheckFailed):
        judge(t, [2.6])
    t = compile_assert("assert math.isclose(f(1), 3.14, rel_tol=0.01)")
    assert t.leaves == ["f(1)"]
    judge(t, [3.141])


def test_truth_is_strict_bool():
    t = compile_assert("assert is_prime(7)")
    judge(t, [True])
    for truthy in (1, [1], "yes", 1.0):
        with pytest.raises(CheckFailed):
            judge(t, [truthy])
    t = compile_assert("assert not is_prime(8)")
    judge(t, [False])
    with pytest.raises(CheckFailed):
        judge(t, [0])


def test_membership_sets_sorted_and_is_none():
    judge(compile_assert("assert set(f(3)) == set((4, 5))"), [(5, 4)])
    judge(compile_assert("assert sorted(f()) == [1, 2, 3]"), [[3, 1, 2]])
    judge(compile_assert("assert f(3) in [1, 2, 3]"), [3])
    with pytest.raises(CheckFailed):
        judge(compile_assert("assert f(3) in [1, 2, 3]"), [3.0])
    judge(compile_assert("assert f() is None"), [None])
    judge(compile_assert("assert f() == [0] * 3"), [[0, 0, 0]])
    judge(compile_assert("assert isinstance(f(), list) and len(f()) == 2"), [[1, 2], [1, 2]])


def test_weak_tests_are_flagged_and_pure_leaves_detected():
    t = compile_assert("assert all(f(x) == x for x in range(3))")
    assert t.weak and len(t.leaves) == 1
    t = compile_assert("assert f(2) == math.pi")
    assert t.pure == [False, True]


def test_bad_tests_are_rejected():
    for src in ("x = 1", "assert f(1) ==", "assert f(1) == 1\nassert f(2) == 2", "print(1)"):
        with pytest.raises(BadTest):
            compile_assert(src)


def test_parent_arithmetic_is_bounded():
    t = compile_assert("assert 2 ** f() == 8")
    with pytest.raises(CheckFailed):
        judge(t, [10 ** 9])
    with pytest.raises(CheckFailed):
        judge(compile_assert("assert [0] * f() == []"), [10 ** 9])


def test_values_roundtrip_and_strictness():
    for v in (None, True, 1, 1.5, "s", [1, (2, 3)], {1: "a", "b": [None]}, {1, 2}, frozenset({"x"}), (), 1 - 2j,
              [0j, {3j: 1}]):
        assert strict_equal(decode(encode(v)), v)
    assert not strict_equal(1 + 0j, 1) and not strict_equal(1j, 2j) and strict_equal(-0.0j, 0j)
    assert not strict_equal(1, True) and not strict_equal(1, 1.0) and not strict_equal((1,), [1])
    assert not strict_equal(float("nan"), float("nan"))
    assert not strict_equal({1: True}, {1: 1})

    class Sneaky(int):
        def __eq__(self, other):
            return True

    for bad in (Sneaky(3), object(), b"bytes", math, type("C", (complex,), {})(1)):
        with pytest.raises(NotPlainData):
            encode(bad)
    for text in ('{"x": 1}', '{"l": 1}', "[1, 2]", '{"S": [{"l": []}]}', "{", '{"l": [' * 5000):
        with pytest.raises(ProtocolError):
            decode(text)


def test_result_lines_are_parsed_strictly():
    ok, problem = parse_results('{"i": 0, "v": 3}\n{"i": 1, "e": "boom"}\n', 2, False)
    assert problem is None and ok == {0: ("value", 3), 1: ("error", "boom")}
    for forged in ('{"i": 0, "v": 3}\n{"i": 0, "v": 4}', '{"i": 5, "v": 1}', "PASSED", '{"i": 0, "v": 1, "x": 2}',
                   '{"i": true, "v": 1}'):
        assert parse_results(forged, 1, False)[1] is not None
    assert parse_results('{"i": 0, "v": 3}', 1, True)[1] == "result channel truncated"


def test_output_normalisation_is_whole_output_not_prefix():
    assert normalise_output("3  \r\n4\n\n") == normalise_output("3\n4")
    assert normalise_output("3\n4\n5") != normalise_output("3\n4")
    assert normalise_output("3\n") != normalise_output("3\n4")
