"""The pairwise judge: is response a or b better? Asked in both orders; a disagreement is a tie.

What it is for: `await PairwiseJudge(llm).acompare(a, b, prompt=task)` asks the judge twice, once with a
shown as "A" and once with b shown as "A" (position bias is the commonest judge bias), maps both answers
back to a/b, and returns a `PairwiseVerdict`: the side both orders agree on, else "tie" with
`consistent=False`. The judge counts pairs and disagreements: `flip_rate` is the share of decided pairs
whose two orders disagreed, the number to report next to any pairwise result.
What it does not do: rank many responses (call it on the pairs you need), or read anything but the
judge's final structured `winner` field.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel, Field

from verifiers.judge.llm import pick_mode, run_blocking
from verifiers.judge.prompts import criteria_text, pairwise_messages
from verifiers.judge.schema import PairwiseJudgment
from verifiers.judge.structured import Answer, AskConfig, ask
from verifiers.verdict import Verdict

Side = Literal["a", "b", "tie"]


def unswap(shown_winner: str, a_shown_first: bool) -> Side:
    """Map the judge's "A" / "B" / "tie" back to the real sides a / b / tie."""
    if shown_winner == "tie":
        return "tie"
    first_won = shown_winner == "A"
    return "a" if first_won == a_shown_first else "b"


def combine_orders(a_first: Side, b_first: Side) -> tuple[Side, bool]:
    """(winner, consistent) from the unswapped winners of both orders: agreement wins, else a tie."""
    if a_first == b_first:
        return a_first, True
    return "tie", False


def flip_rate(verdicts: list["PairwiseVerdict"]) -> float:
    """Share of decided (error-free) pairs whose two orders disagreed; 0.0 when there are none."""
    decided = [v for v in verdicts if v.error is None]
    return sum(not v.consistent for v in decided) / len(decided) if decided else 0.0


class PairwiseVerdict(BaseModel):
    """The outcome of one a-vs-b comparison, asked in both orders."""

    winner: Side | None = None          # None only when `error` is set
    consistent: bool = False            # both orders gave the same side
    orders: list[Side | None] = Field(default_factory=list)  # unswapped winner: [a shown first, b shown first]
    reasons: list[str] = Field(default_factory=list)
    error: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    def to_verdict(self) -> Verdict:
        """From a's side: passed when a wins; score 1 / 0.5 / 0 for win / tie / loss; error stays an error."""
        if self.error is not None:
            return Verdict.broken(self.error, **self.details)
        score = {"a": 1.0, "tie": 0.5, "b": 0.0}[self.winner or "tie"]
        reason = f"pairwise: {self.winner}" + ("" if self.consistent else " (orders disagreed)")
        return Verdict(passed=self.winner == "a", score=score, reason=reason,
                       details={"orders": self.orders, "consistent": self.consistent, **self.details})


class PairwiseJudge:
    """An LLM judge comparing two responses to one task (see the module docstring)."""

    name = "judge.pairwise"
    version = "1"

    def __init__(self, llm: Any, *, rubric: str | None = None, principles: list[str] | None = None,
                 ask_config: AskConfig | None = None, loop: Any = None) -> None:
        self.llm = llm
        self.criteria = criteria_text(rubric, principles)
        self.ask_config = ask_config or AskConfig()
        self.loop = loop
        self.pairs = 0          # decided pairs
        self.inconsistent = 0   # of which the two orders disagreed
        self.errors = 0

    @property
    def flip_rate(self) -> float:
        return self.inconsistent / self.pairs if self.pairs else 0.0

    def compare(self, a: str, b: str, prompt: Any = None) -> PairwiseVerdict:
        return run_blocking(self.acompare(a, b, prompt=prompt), self.loop)

    async def acompare(self, a: str, b: str, prompt: Any = None) -> PairwiseVerdict:
        mode = pick_mode(self.llm, self.ask_config.mode)
        a_first, b_first = await asyncio.gather(
            ask(self.llm, pairwise_messages(prompt, a, b, self.criteria, mode), PairwiseJudgment, self.ask_config),
            ask(self.llm, pairwise_messages(prompt, b, a, self.criteria, mode), PairwiseJudgment, self.ask_config))
        verdict = build_verdict(a_first, b_first, self.llm.model)
        self._count(verdict)
        return verdict

    def _count(self, verdict: PairwiseVerdict) -> None:
        if verdict.error is not None:
            self.errors += 1
            return
        self.pairs += 1
        self.inconsistent += not verdict.consistent


def build_verdict(a_first: Answer[PairwiseJudgment], b_first: Answer[PairwiseJudgment], model: str) -> PairwiseVerdict:
    """Combine the answers of both orders; any failed order makes the whole comparison an error."""
    details = {"judge_model": model, "calls": a_first.calls + b_first.calls, "mode": a_first.mode}
    failed = [(name, ans) for name, ans in (("a_first", a_first), ("b_first", b_first)) if ans.value is None]
    if failed:
        name, ans = failed[0]
        details.update({f"{n}_error_kind": x.error_kind for n, x in failed})
        return PairwiseVerdict(error=f"{name}: {ans.error}", details=details)
    sides = (unswap(a_first.value.winner, True), unswap(b_first.value.winner, False))
    winner, consistent = combine_orders(*sides)
    return PairwiseVerdict(winner=winner, consistent=consistent, orders=list(sides),
                           reasons=[a_first.value.reasons, b_first.value.reasons], details=details)
