"""Composition: gates, weighted sums, batch APIs, the verdict cache, and the TRL reward adapter."""

import threading
import time

import pytest

from verifiers import Verdict
from verifiers.cache import VerdictCache, cache_key
from verifiers.compose import AllOf, AnyOf, Threshold, Weighted, averify_batch, call_verifier, verify_batch
from verifiers.math import MathVerifier
from verifiers.reward import as_reward_function, completion_text


def fixed(verdict):
    def verifier(response):
        return verdict
    return verifier


PASS, FAIL, ERROR = Verdict.ok(), Verdict.wrong("no"), Verdict.broken("timeout")
HALF = Verdict.wrong("half", score=0.5)


def needs_reference(response, reference):
    return Verdict.ok() if response == reference else Verdict.wrong("differs")


def test_call_verifier_passes_only_accepted_columns_and_catches_crashes():
    assert call_verifier(needs_reference, "a", reference="a", tests=["ignored"]).passed

    def crashing(response):
        raise ZeroDivisionError("boom")
    verdict = call_verifier(crashing, "a")
    assert verdict.error == "exception: ZeroDivisionError" and not verdict.passed


@pytest.mark.parametrize("parts, passed, error", [
    ([PASS, PASS], True, None), ([PASS, FAIL], False, None), ([PASS, ERROR], False, "component_error"),
    ([FAIL, ERROR], False, None),
])
def test_all_of(parts, passed, error):
    verdict = AllOf([fixed(v) for v in parts])("x")
    assert (verdict.passed, verdict.error) == (passed, error)


@pytest.mark.parametrize("parts, passed, error", [
    ([FAIL, PASS], True, None), ([FAIL, FAIL], False, None), ([FAIL, ERROR], False, "component_error"),
    ([ERROR, PASS], True, None),
])
def test_any_of(parts, passed, error):
    verdict = AnyOf([fixed(v) for v in parts])("x")
    assert (verdict.passed, verdict.error) == (passed, error)


def test_weighted_sum_and_threshold():
    verdict = Weighted({"a": (fixed(PASS), 3.0), "b": (fixed(FAIL), 1.0)}, pass_threshold=0.75)("x")
    assert verdict.score == pytest.approx(0.75) and verdict.passed
    assert not Weighted({"a": (fixed(PASS), 1.0), "b": (fixed(HALF), 1.0)})("x").passed
    assert Weighted({"a": (fixed(PASS), 1.0), "b": (fixed(ERROR), 1.0)})("x").error == "component_error"
    assert Threshold(fixed(HALF), 0.5)("x").passed and not Threshold(fixed(HALF), 0.6)("x").passed
    assert Threshold(fixed(ERROR), 0.1)("x").error == "timeout"
    with pytest.raises(ValueError):
        Weighted({"a": (fixed(PASS), -1.0)})


def test_composites_forward_columns_to_the_math_verifier():
    math = MathVerifier()
    gate = AllOf({"math": math, "short": lambda response: Verdict.ok() if len(response) < 40 else Verdict.wrong("long")})
    assert gate(r"\boxed{\frac12}", reference="0.5").passed
    assert not gate(r"\boxed{\frac13}", reference="0.5").passed


def test_verify_batch_bounds_parallelism_and_keeps_order():
    active, peak, lock = [0], [0], threading.Lock()

    def slow(response, reference):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1
        return needs_reference(response, reference)

    items = [{"response": str(i), "reference": str(i if i % 2 else -1)} for i in range(12)]
    verdicts = verify_batch(slow, items, max_concurrency=3)
    assert [v.passed for v in verdicts] == [i % 2 == 1 for i in range(12)]
    assert peak[0] <= 3


async def test_async_batch_with_cache_skips_repeated_work():
    calls = []

    def counting(response, reference):
        calls.append(response)
        return needs_reference(response, reference)

    cache = VerdictCache()
    items = [{"response": "a", "reference": "a"}] * 4 + [{"response": "b", "reference": "a"}]
    first = await averify_batch(counting, items, max_concurrency=1, cache=cache)
    second = await averify_batch(counting, items, max_concurrency=2, cache=cache)
    assert [v.passed for v in first] == [v.passed for v in second] == [True] * 4 + [False]
    assert len(calls) == 2 and cache.hits >= 3 + 5


def test_cache_key_covers_verifier_version_settings_and_inputs():
    strict, loose = MathVerifier(rel_tol=1e-6), MathVerifier(rel_tol=1e-3)
    key = cache_key(strict, "r", {"reference": "1"})
    assert key == cache_key(MathVerifier(), "r", {"reference": "1"})
    assert key != cache_key(loose, "r", {"reference": "1"})
    assert key != cache_key(strict, "r", {"reference": "2"}) != cache_key(strict, "s", {"reference": "1"})


def test_cache_never_stores_errors_and_evicts_lru():
    cache = VerdictCache(max_entries=2)
    cache.put("e", ERROR)
    assert cache.get("e") is None
    cache.put("a", PASS)
    cache.put("b", FAIL)
    cache.get("a")
    cache.put("c", PASS)
    assert cache.get("b") is None and cache.get("a") is not None and len(cache) == 2


def test_reward_function_trl_style():
    reward = as_reward_function(MathVerifier(), columns={"reference": "answer"})
    completions = [[{"role": "assistant", "content": r"so \boxed{4}"}], [{"role": "assistant", "content": r"\boxed{5}"}],
                   [{"role": "assistant", "content": r"\boxed{9^{9^{9^{9}}}}"}]]
    assert reward(completions[:2], answer=["4", "4"], prompts=["p"] * 2) == [1.0, 0.0]
    assert reward.__name__ == "math"
    fast_timeout = as_reward_function(MathVerifier(timeout=0.3), columns={"reference": "answer"}, on_error=-1.0)
    assert fast_timeout(completions[2:], answer=["4"]) == [-1.0]
    assert as_reward_function(MathVerifier(timeout=0.3), columns={"reference": "answer"})(
        completions[2:], answer=["4"]) == [None]
    with pytest.raises(KeyError):
        reward(["x"], solution=["1"])


def test_completion_text_shapes():
    assert completion_text("plain") == "plain"
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"
    assert completion_text(None) == ""
