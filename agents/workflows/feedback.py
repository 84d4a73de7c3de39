"""The `feedback` workflow: answer, get checked by the environment, try again with the reason; up to R attempts.

What it is for: learning from environment feedback. After each answer an injected `check` (selfplay
wires a verifier in: answer text -> passed + reason) runs; on failure its reason goes back to the model
as a user turn (`feedback_template`, `{feedback}` filled) and the model answers again, up to
`max_attempts` answers. The whole conversation is the trajectory; the last answer is the candidate.
Every check is kept in `metadata["checks"]` (attempt, passed, reason, error). Stop reasons: `passed`,
`max_attempts`, `check_error` (the check itself failed: its error is recorded and the loop stops, as a
verifier error is never taken for a wrong answer), `error` (a request failed).
What it does NOT do: verify the final candidate for the record (the pipeline's verifier does, and may
reuse the last check), or hide the checker's reasons from the data (a template without `{feedback}`
tells the model only that it was wrong).
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Union

from pydantic import BaseModel, ConfigDict, Field

from agents.llm.base import LLM
from agents.llm.types import Message, SamplingParams
from agents.workflows.common import (CheckResult, Rollout, first_turn, gather_rollouts, maybe_await, next_turn,
                                     parse_options, render)
from agents.workflows.steps import split_steps
from agents.workflows.trajectory import Trajectory

NAME = "feedback"
Check = Callable[[str], Union[CheckResult, Any, Awaitable[Any]]]

FEEDBACK_TEMPLATE = """Your answer was checked and it is not accepted:

{feedback}

Find the mistake and give a corrected, complete answer."""


class FeedbackOptions(BaseModel):
    """Options of `feedback` (`[generate.workflow_options]`)."""

    model_config = ConfigDict(extra="forbid")
    max_attempts: int = Field(default=3, ge=1, le=20)
    feedback_template: str = FEEDBACK_TEMPLATE
    max_feedback_chars: int = Field(default=2000, ge=50)
    step_separator: str | None = None


async def run_feedback(llm: LLM, task_id: str, messages: list[Message], params: SamplingParams, k: int, *,
                       check: Check | None = None, options: dict[str, Any] | None = None, first_index: int = 0,
                       **_unused: Any) -> list[Trajectory]:
    """K trajectories, each retried on the checker's feedback until it passes or runs out of attempts."""
    opts = parse_options(FeedbackOptions, options, NAME)
    if check is None:
        raise ValueError(f"workflow {NAME!r} needs a check callable (answer -> passed + reason)")
    rollouts = await first_turn(llm, NAME, task_id, messages, params, k, first_index)

    async def attempt_until_passed(rollout: Rollout) -> Trajectory:
        stop = "error" if rollout.error else await _attempts(llm, check, rollout, params, opts)
        answer = rollout.last_text
        return rollout.to_trajectory(final_answer=answer, steps=split_steps(answer, opts.step_separator),
                                     stop_reason=stop)

    return await gather_rollouts(rollouts, attempt_until_passed)


async def _attempts(llm: LLM, check: Check, rollout: Rollout, params: SamplingParams, opts: FeedbackOptions) -> str:
    rollout.metadata["checks"] = checks = []
    for attempt in range(1, opts.max_attempts + 1):
        result = await run_check(check, rollout.last_text)
        checks.append({"attempt": attempt, "passed": result.passed, "reason": result.reason, "error": result.error})
        if result.error is not None:
            return "check_error"
        if result.passed:
            return "passed"
        if attempt == opts.max_attempts:
            return "max_attempts"
        feedback = (result.reason or "The answer is wrong.")[:opts.max_feedback_chars]
        rollout.messages.append({"role": "user", "content": render(opts.feedback_template, feedback=feedback)})
        if await next_turn(llm, rollout, params) is None:
            return "error"
    return "max_attempts"


async def run_check(check: Check, answer: str) -> CheckResult:
    """Run the check; whatever it returns becomes a CheckResult, whatever it raises becomes `error`."""
    try:
        value = await maybe_await(check, answer)
    except Exception as exc:  # noqa: BLE001 - a failing check is recorded, not a crash
        return CheckResult(passed=False, reason="", error=f"{type(exc).__name__}: {str(exc)[:300]}")
    return as_check_result(value)


def as_check_result(value: Any) -> CheckResult:
    """Accept a CheckResult, a bool, a dict, or any object with `passed` / `reason` / `error` (a Verdict)."""
    if isinstance(value, CheckResult):
        return value
    if isinstance(value, bool):
        return CheckResult(passed=value)
    if isinstance(value, dict):
        return CheckResult(passed=bool(value.get("passed")), reason=str(value.get("reason") or ""),
                           error=value.get("error"))
    if hasattr(value, "passed"):
        return CheckResult(passed=bool(value.passed), reason=str(getattr(value, "reason", "") or ""),
                           error=getattr(value, "error", None))
    return CheckResult(passed=False, error=f"check returned {type(value).__name__}, not a result")
