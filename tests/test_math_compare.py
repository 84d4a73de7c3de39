"""Equality rules, called in-process on inputs known to be fast (no worker needed)."""

import pytest
import sympy

from verifiers.math.compare import answers_equal
from verifiers.math.numeric import decimal_matches, decimals_match, scalars_equal
from verifiers.math.parse import Decimal, parse_answer


def same(answer, reference, rel_tol=1e-6):
    return answers_equal(parse_answer(reference), parse_answer(answer), rel_tol)


def test_exact_rationals_and_big_integers():
    big = 10 ** 29 + 12345
    assert scalars_equal(sympy.Integer(big), sympy.Integer(big))
    assert not scalars_equal(sympy.Integer(big), sympy.Integer(big + 1))
    tiny_a = 1 / sympy.factorial(2004, evaluate=False)
    tiny_b = 1 / sympy.factorial(2006, evaluate=False)
    assert not scalars_equal(tiny_a, tiny_b) and scalars_equal(tiny_a, tiny_a)


def test_decimal_policy_against_exact_reference():
    third = sympy.Rational(1, 3)
    for text, expected in [("0.3333333", True), ("0.333333", False), ("0.33", False), ("0.3333334", False)]:
        assert decimal_matches(parse_answer(text).decimal, third) is expected, text
    assert decimal_matches(parse_answer("2.0").decimal, sympy.Integer(2))
    assert decimal_matches(parse_answer("1.4142136").decimal, sympy.sqrt(2))
    assert not decimal_matches(parse_answer("1.4142136").decimal, sympy.sqrt(2), rel_tol=1e-9)


def test_decimal_vs_decimal_is_strict_about_the_coarser_one():
    d = lambda text: parse_answer(text).decimal  # noqa: E731
    assert decimals_match(d("2.50"), d("2.5"))
    assert not decimals_match(d("3.14159"), d("3.14"))
    assert not decimals_match(d("0.54"), d("0.5"))
    assert not decimals_match(d("0.0000002"), d("0.0000001"))
    assert decimals_match(d("1.41421356237"), d("1.4142136"))
    assert not decimals_match(Decimal(sympy.Rational(1), sympy.Rational(1, 2)), d("1.2"))


@pytest.mark.parametrize("answer, reference, expected", [
    ("(1, 2)", "(1, 2)", True), ("(1, 2)", "[1, 2)", False), ("(1,2]", r"(1,2]", True),
    ("x > 2", r"(2, \infty)", True), ("x >= 2", r"(2, \infty)", False),
    ("(2, 1)", "(1, 2)", False), ("2, 1", "1, 2", True), (r"\{1, 2\}", "2, 1", True),
    ("y = 3", "x = 3", False), ("x = 3", "3", True), ("3", "x = 3", True),
    ("50%", "0.5", True), ("50%", "50", True), ("50%", "0.5%", False), ("5%", "0.5", False),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&3\\2&4\end{pmatrix}", False),
    ("3 - 4i", "3 + 4i", False), (r"\frac{1}{1+i}", r"\frac{1-i}{2}", True),
    ("x^2 - 1", "(x - 1)(x + 1)", True), (r"\sqrt{x^2}", "x", False),
    ("B", r"\text{(B)}", True), (r"\text{B or C}", "B", False),
])
def test_structures(answer, reference, expected):
    assert same(answer, reference) is expected
