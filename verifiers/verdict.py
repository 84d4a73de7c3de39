"""The Verdict record shared by every verifier (math, code, prm, judge, composition).

What it is for: one plain, JSON-serialisable answer to "did this candidate pass, how well, and why".
What it does not do: decide anything. Verifiers build Verdicts; selection code in `selfplay` reads them.

Rule of the house: `error` is set only when the verifier itself failed (timeout, crash, unusable
reference). Such a verdict is never a pass and never counts as a wrong answer either: callers
must treat `error is not None` as "unknown".
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Verdict(BaseModel):
    """Outcome of one check of one candidate."""

    passed: bool
    score: float = Field(ge=0.0, le=1.0)
    reason: str = ""
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    step_scores: list[float] | None = None

    @property
    def failed_to_check(self) -> bool:
        """True when the verifier could not decide (timeout, crash): neither right nor wrong."""
        return self.error is not None

    @classmethod
    def ok(cls, reason: str = "correct", score: float = 1.0, **details: Any) -> "Verdict":
        return cls(passed=True, score=score, reason=reason, details=details)

    @classmethod
    def wrong(cls, reason: str, score: float = 0.0, **details: Any) -> "Verdict":
        return cls(passed=False, score=score, reason=reason, details=details)

    @classmethod
    def broken(cls, error: str, reason: str = "", **details: Any) -> "Verdict":
        """The verifier itself failed: not a pass, not a wrong answer."""
        return cls(passed=False, score=0.0, reason=reason or error, error=error, details=details)
