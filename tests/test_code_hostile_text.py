"""The trusted parent's time is bounded by the size of what a candidate sends, never by its product with
anything (issue 22): long hostile texts through `extract_code`, the result parser and the judge."""

import textwrap
import time

import pytest

from verifiers.code import CodeVerifier, SandboxConfig, SandboxPool, extract_code, verify

BOUND_S = 2.0  # generous: a 2-core box shared by several jobs (the quadratic cases took 10-20 s)


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(SandboxConfig(size=1))
    yield p
    p.close()


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


@pytest.mark.parametrize("text", [
    "```" + " " * 120_000,  # was 19 s: the fence regex backtracked over the blanks quadratically
    "```python" + " \t" * 60_000,
    ("```" + " " * 100) * 5_000,
    "```" * 100_000,
    ("```py\n" + "x" * 50) * 20_000,
    "```\n" + "x" * 2_000_000,
], ids=["fence-spaces", "fence-lang-blanks", "many-fences", "backticks", "many-blocks", "unclosed"])
def test_extract_code_is_linear(text):
    _, elapsed = timed(extract_code, text)
    assert elapsed < BOUND_S


def test_extract_code_keeps_its_meaning():
    assert extract_code("a\n```python\nx = 1\n```\nb\n```py\ny = 2\n```") == "y = 2\n"
    assert extract_code("````python\nq\n```") == "q\n"
    assert extract_code("```  Python3 \t\nz```") == "z"
    assert extract_code("```pythonx\nno\n```") == "```pythonx\nno\n```"  # not a python fence: whole text
    assert extract_code("no fence") == "no fence"


def test_fenced_completion_with_a_long_tail_through_the_verifier(pool):
    completion = "```python\ndef f(x):\n    return x\n```" + " " * 120_000
    verdict, elapsed = timed(CodeVerifier(pool=pool), completion, tests=["assert f(1) == 1"])
    assert verdict.passed and elapsed < BOUND_S + 1


def test_a_huge_program_error_line_is_parsed_once_not_per_missing_test(pool):
    forger = textwrap.dedent("""
        import json, os
        os.write(3, (json.dumps({"program_error": "x" * (7 << 20)}) + "\\n").encode())
        os._exit(0)
    """)
    tests = [f"assert f({i}) == {i}" for i in range(400)]  # was 9.8 s: the 7 MiB line re-parsed 400 times
    verdict, elapsed = timed(verify, forger, tests, timeout=5.0, pool=pool)
    assert verdict.error is None and not verdict.passed
    assert verdict.details["tests"][0]["status"] == "missing"
    assert "program failed before the tests ran" in verdict.details["tests"][0]["detail"]
    assert elapsed < BOUND_S + 2


def test_membership_of_a_big_value_in_a_big_list_is_linear(pool):
    program = "def f():\n    return list(range(45_000))\ndef g():\n    return list(range(45_000))\n"
    verdict, elapsed = timed(verify, program, ["assert f() in g()", "assert f() not in g()"], pool=pool)
    assert [t["passed"] for t in verdict.details["tests"]] == [False, True]
    assert elapsed < BOUND_S + 1


def test_round_with_absurd_digits_from_the_candidate_is_a_failed_test(pool):
    program = "def digits():\n    return -10 ** 4000\n"
    verdict, elapsed = timed(verify, program, ["assert round(5, digits()) == 0"], pool=pool)
    assert verdict.error is None and not verdict.passed and elapsed < BOUND_S
