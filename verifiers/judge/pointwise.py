"""The pointwise judge: grade one response 1-10 against a rubric or a constitution, as a Verdict.

What it is for: `PointwiseJudge(llm, rubric=... | principles=[...])` is a verifier. `await judge.averify(
response, prompt=task_prompt)` (or the blocking `judge(response, prompt=...)`, usable in
`verifiers.compose`) returns a Verdict: score = (grade - 1) / 9, passed = grade >= pass_threshold, the
judge's reasons as `reason`, its grade and call count in `details`. A judge reply that cannot be used
(after one repair), or a call that failed, is a Verdict with `error` set, never a score.
What it does not do: price or budget calls (the LLM passed in does: `selfplay` passes a metered one),
or cache verdicts (wrap it with `verifiers.compose`'s cache).
"""

from __future__ import annotations

import hashlib
from typing import Any

from verifiers.judge.llm import pick_mode, run_blocking
from verifiers.judge.prompts import criteria_text, pointwise_messages
from verifiers.judge.schema import PointwiseJudgment
from verifiers.judge.structured import AskConfig, ask
from verifiers.verdict import Verdict


def grade_to_score(grade: int) -> float:
    """A 1-10 grade as a 0..1 score: 1 -> 0.0, 10 -> 1.0, linear in between."""
    return (min(max(grade, 1), 10) - 1) / 9.0


class PointwiseJudge:
    """An LLM judge that grades one response (see the module docstring)."""

    name = "judge.pointwise"
    version = "1"

    def __init__(self, llm: Any, *, rubric: str | None = None, principles: list[str] | None = None,
                 pass_threshold: int = 7, ask_config: AskConfig | None = None, loop: Any = None) -> None:
        if not 1 <= pass_threshold <= 10:
            raise ValueError(f"pass_threshold is a grade from 1 to 10, got {pass_threshold}")
        self.llm = llm
        self.criteria = criteria_text(rubric, principles)
        self.pass_threshold = pass_threshold
        self.ask_config = ask_config or AskConfig()
        self.loop = loop

    def cache_key_parts(self) -> dict[str, Any]:
        c = self.ask_config
        return {"model": self.llm.model, "criteria": hashlib.sha256(self.criteria.encode()).hexdigest()[:16],
                "pass_threshold": self.pass_threshold, "mode": c.mode, "max_tokens": c.max_tokens,
                "temperature": c.temperature, "max_repairs": c.max_repairs}

    def __call__(self, response: str, prompt: Any = None) -> Verdict:
        return run_blocking(self.averify(response, prompt=prompt), self.loop)

    async def averify(self, response: str, prompt: Any = None) -> Verdict:
        answer = await ask(self.llm, self.messages(response, prompt), PointwiseJudgment, self.ask_config)
        details = {"judge_model": self.llm.model, **answer.details()}
        if answer.value is None:
            return Verdict.broken(answer.error or "judge failed", **details)
        return judgment_to_verdict(answer.value, self.pass_threshold, details)

    def messages(self, response: str, prompt: Any = None) -> list[dict[str, str]]:
        """The exact messages sent for this response (mode resolved as `ask` will resolve it)."""
        return pointwise_messages(prompt, response, self.criteria, pick_mode(self.llm, self.ask_config.mode))


def judgment_to_verdict(judgment: PointwiseJudgment, pass_threshold: int, details: dict[str, Any]) -> Verdict:
    passed = judgment.score >= pass_threshold
    reason = f"judge grade {judgment.score}/10: {judgment.reasons.strip()[:400]}"
    return Verdict(passed=passed, score=grade_to_score(judgment.score), reason=reason,
                   details={"judge_grade": judgment.score, **details})
