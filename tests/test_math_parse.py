"""Normalisation and parsing, including the rule that model text is never evaluated as Python."""

import pytest
import sympy

from verifiers.math import parse as parse_module
from verifiers.math.normalize import normalize_answer, text_answer
from verifiers.math.parse import expand_plus_minus, lone_decimal, parse_answer, to_sympy
from verifiers.math.textparse import ParseError, parse_text, tokenize


@pytest.mark.parametrize("raw, clean", [
    (r"\dfrac32", r"\frac{3}{2}"), (r"\tfrac{1}{2}", r"\frac{1}{2}"), (r"\frac3{4}", r"\frac{3}{4}"),
    (r"\sqrt2", r"\sqrt{2}"), (r"90^\circ", "90"), (r"1{,}000", "1000"), (r"12\,345", "12345"),
    ("1,234,567", "1234567"), (r"\$5", "5"), (r"5 \text{ cm}^2", "5"), ("12 square units", "12"),
    (r"\left( 1, 2 \right]", "( 1, 2 ]"), (r"0.\overline{3}", r"\frac{3}{9}"),
])
def test_normalize(raw, clean):
    assert normalize_answer(raw).text == clean


def test_percent_is_reported_not_silently_dropped():
    assert normalize_answer(r"25\%") .percent and normalize_answer(r"25\%").text == "25"
    assert not normalize_answer("25").percent


def test_text_answers():
    assert text_answer(r"\text{(B)}") == "b" and text_answer("(C)") == "c" and text_answer("Yes") == "yes"
    assert text_answer("2x") is None and text_answer(r"\pi") is None and text_answer("e") is None


def test_plain_text_parser_builds_exact_sympy():
    x = sympy.Symbol("x")
    assert parse_text("0.1") == sympy.Rational(1, 10)
    assert parse_text("2 sqrt(3) + x^2") == 2 * sympy.sqrt(3) + x ** 2
    assert parse_text("[1, 2)") == sympy.Interval.Ropen(1, 2)
    assert parse_text("x = 2 or x = 3") == sympy.FiniteSet(sympy.Eq(x, 2), sympy.Eq(x, 3))
    assert parse_text("3 + 4i") == 3 + 4 * sympy.I
    assert isinstance(parse_text("9^9^9^9"), sympy.Pow)  # unevaluated: parsing stays cheap


HOSTILE = ["__import__('os').system('echo pwned')", "().__class__.__bases__[0]", "lambda: 1", "exec('1')",
           "eval(\"1\")", "open('/etc/passwd').read()", "[x for x in (1,)]", "a.b", "1; import os"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_plain_parser_reads_python_as_math_or_refuses_it(hostile):
    try:
        value = parse_text(hostile)
    except ParseError:
        return
    assert isinstance(value, sympy.Basic)  # e.g. "1; import os" is the set {1, i*m*p*o*r*t*o*s}: inert


def test_parsing_never_calls_eval_sympify_or_parse_expr(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("evaluated model text")

    monkeypatch.setattr(sympy, "sympify", forbidden)
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", forbidden)
    monkeypatch.setattr("builtins.eval", forbidden)
    for text in ["3/4", "2 sqrt(3)", "(-oo, 2]", "x = 2 or x = 3", "1e-3", "5!", "|x - 1|", *HOSTILE]:
        try:
            parse_text(text)
        except ParseError:
            pass


def test_deep_nesting_and_long_input_are_refused():
    with pytest.raises(ParseError):
        parse_text("(" * 200 + "1" + ")" * 200)
    with pytest.raises(ParseError):
        tokenize("1+" * 1000 + "1")
    with pytest.raises(ParseError):
        parse_answer("1" * 2000)


def test_pairs_are_tuples_not_empty_intervals():
    assert to_sympy(r"(3, -4)") == sympy.Tuple(3, -4)
    with pytest.raises(ParseError):
        to_sympy("[3, 1]")


def test_plus_minus_expansion_and_decimals():
    assert expand_plus_minus(r"1 \pm \sqrt{2}") == [r"1 + \sqrt{2}", r"1 - \sqrt{2}"]
    decimal = lone_decimal("-0.250")
    assert decimal.value == sympy.Rational(-1, 4) and decimal.half_ulp == sympy.Rational(1, 2000)
    assert lone_decimal("1/4") is None


def test_latex_floats_become_exact_and_i_is_imaginary():
    parsed = parse_answer(r"\frac{0.1}{1} + 2i")
    assert parsed.value == sympy.Rational(1, 10) + 2 * sympy.I
    assert not parsed.value.atoms(sympy.Float)
    assert parse_module.parse_answer(r"\text{(B)}").words == "b"
