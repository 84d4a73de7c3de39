"""Verified candidates built by hand for model-free tests of selection, datasets, monitors and exports."""

from __future__ import annotations

from typing import Any, Sequence

from selfplay.core.candidate import Candidate
from verifiers.verdict import Verdict


def verified(task: str, index: int, text: str, passed: bool, score: float | None = None, *, answer: str | None = None,
             error: str | None = None, prompt: Sequence[dict[str, Any]] | None = None,
             completion: Sequence[dict[str, Any]] | None = None, token_ids: list[int] | None = None,
             logprobs: list[float] | None = None, steps: Sequence[str] = (), round_: int = 0,
             workflow: str = "direct") -> Candidate:
    """A candidate of `task` with a verdict: `passed`, `score` (default 1/0), the extracted `answer`, a verifier
    `error` (neither pass nor fail)."""
    details = {"extracted": [answer]} if answer is not None else {}
    verdict = Verdict(passed=passed and error is None, score=(1.0 if passed else 0.0) if score is None else score,
                      error=error, details=details)
    return Candidate(task_id=task, round=round_, workflow=workflow, sample_index=index, final_answer=text,
                     prompt=list(prompt if prompt is not None else [{"role": "user", "content": "q"}]),
                     completion=list(completion if completion is not None else [{"role": "assistant", "content": text}]),
                     completion_token_ids=token_ids, completion_logprobs=logprobs, steps=list(steps), verdict=verdict)
