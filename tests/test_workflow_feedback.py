"""`feedback`: the check's reason goes back to the model until it passes or runs out of attempts."""

from dataclasses import dataclass

import pytest

from agents.llm.types import SamplingParams
from agents.workflows import CheckResult, run_workflow
from tests.test_workflow_fakes import ScriptedLLM, last_user

PROMPT = [{"role": "user", "content": "What is 6*7?"}]


def answers(*texts):
    """The model's i-th answer is texts[i] (counted by its assistant turns so far)."""
    return ScriptedLLM(lambda m, c: texts[min(sum(x["role"] == "assistant" for x in m), len(texts) - 1)])


def is_42(answer: str) -> CheckResult:
    return CheckResult(passed="\\boxed{42}" in answer, reason=f"expected 42 but got: {answer[-12:]}")


async def test_a_failed_check_feeds_its_reason_back_until_the_answer_passes():
    llm = answers("\\boxed{41}", "\\boxed{40}", "\\boxed{42}")
    t = (await run_workflow("feedback", llm, "t1", PROMPT, SamplingParams(seed=5), 1, check=is_42))[0]
    assert t.stop_reason == "passed" and t.final_answer == "\\boxed{42}" and t.turns == 3
    assert [m["role"] for m in t.messages] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert "expected 42 but got: \\boxed{41}" in t.messages[2]["content"]
    assert [c["passed"] for c in t.metadata["checks"]] == [False, False, True]
    assert [c.params.seed for c in llm.calls][1] != llm.calls[2].params.seed


async def test_stops_at_max_attempts_with_the_last_answer_as_candidate():
    t = (await run_workflow("feedback", answers("\\boxed{1}", "\\boxed{2}"), "t1", PROMPT, SamplingParams(), 1,
                            check=is_42, options={"max_attempts": 2}))[0]
    assert t.stop_reason == "max_attempts" and t.final_answer == "\\boxed{2}" and len(t.metadata["checks"]) == 2


async def test_async_checks_and_verdict_like_results_are_accepted():
    @dataclass
    class Verdict:
        passed: bool
        reason: str
        error: str | None = None

    async def check(answer):
        return Verdict(passed="42" in answer, reason="not 42")

    out = await run_workflow("feedback", answers("41", "42"), "t1", PROMPT, SamplingParams(), 2, check=check)
    assert [t.stop_reason for t in out] == ["passed", "passed"]
    assert all(last_user(t.messages).startswith("Your answer was checked") for t in out)


async def test_a_failing_check_is_recorded_and_never_taken_for_a_wrong_answer():
    def broken(answer):
        raise TimeoutError("verifier timed out")

    t = (await run_workflow("feedback", answers("\\boxed{41}"), "t1", PROMPT, SamplingParams(), 1, check=broken))[0]
    assert t.stop_reason == "check_error" and t.turns == 1 and t.error is None
    assert t.metadata["checks"][0]["error"] == "TimeoutError: verifier timed out"


async def test_feedback_needs_a_check_and_a_template_may_hide_the_reason():
    with pytest.raises(ValueError, match="check"):
        await run_workflow("feedback", answers("x"), "t1", PROMPT, SamplingParams(), 1)
    t = (await run_workflow("feedback", answers("1", "42"), "t1", PROMPT, SamplingParams(), 1,
                            check=lambda a: "42" in a, options={"feedback_template": "Wrong. Try again."}))[0]
    assert t.messages[2] == {"role": "user", "content": "Wrong. Try again."} and t.stop_reason == "passed"
