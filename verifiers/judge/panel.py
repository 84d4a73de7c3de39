"""Several judges, one verdict: aggregation rules (small pure functions) and panels that apply them.

What it is for: a panel of judges (different models, or one model with different rubrics) is less
noisy and harder to game than one. `aggregate_scores` combines pointwise Verdicts (mean, median or
min of the valid ones; errors are left out, and too few valid ones make the panel's verdict an error);
`majority_side` combines pairwise winners (plurality; an a/b dead heat is a tie).
`PointwisePanel` and `PairwisePanel` run their judges concurrently and apply those rules.
What it does not do: weight judges by measured reliability (pass a panel of the ones you trust).
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from typing import Any

from verifiers.judge.llm import run_blocking
from verifiers.judge.pairwise import PairwiseJudge, PairwiseVerdict, Side
from verifiers.judge.pointwise import PointwiseJudge, grade_to_score
from verifiers.verdict import Verdict

METHODS = {"mean": statistics.fmean, "median": statistics.median, "min": min}


def aggregate_scores(verdicts: list[Verdict], method: str = "mean", pass_score: float = grade_to_score(7),
                     min_valid: int = 1) -> Verdict:
    """One Verdict from several: `method` over the scores of error-free verdicts; passed = score >= pass_score."""
    if method not in METHODS:
        raise ValueError(f"unknown aggregation {method!r}: use {', '.join(METHODS)}")
    valid = [v for v in verdicts if v.error is None]
    details = {"scores": [None if v.error else v.score for v in verdicts], "method": method}
    if len(valid) < max(min_valid, 1):
        return Verdict.broken(f"judge panel: {len(valid)} valid of {len(verdicts)} (need {max(min_valid, 1)})",
                              **details)
    score = float(METHODS[method]([v.score for v in valid]))
    return Verdict(passed=score >= pass_score, score=score, reason=f"panel {method} of {len(valid)} judges",
                   details=details)


def majority_side(sides: list[Side]) -> Side:
    """The most frequent side; when a and b are equally frequent (and ahead of tie), a tie."""
    if not sides:
        raise ValueError("majority_side needs at least one side")
    counts = Counter(sides)
    best = max(counts.values())
    leaders = {side for side, n in counts.items() if n == best}
    return leaders.pop() if len(leaders) == 1 else "tie"


class PointwisePanel:
    """Pointwise judges aggregated by `aggregate_scores`; itself a verifier."""

    name = "judge.panel"
    version = "1"

    def __init__(self, judges: list[PointwiseJudge], method: str = "mean", pass_threshold: int = 7,
                 min_valid: int = 1, loop: Any = None) -> None:
        if not judges:
            raise ValueError("a panel needs at least one judge")
        self.judges, self.method, self.min_valid, self.loop = judges, method, min_valid, loop
        self.pass_score = grade_to_score(pass_threshold)

    def cache_key_parts(self) -> dict[str, Any]:
        return {"judges": [j.cache_key_parts() for j in self.judges], "method": self.method,
                "pass_score": self.pass_score, "min_valid": self.min_valid}

    def __call__(self, response: str, prompt: Any = None) -> Verdict:
        return run_blocking(self.averify(response, prompt=prompt), self.loop)

    async def averify(self, response: str, prompt: Any = None) -> Verdict:
        verdicts = await asyncio.gather(*(j.averify(response, prompt=prompt) for j in self.judges))
        return aggregate_scores(list(verdicts), self.method, self.pass_score, self.min_valid)


class PairwisePanel:
    """Pairwise judges; the winner is the majority of their (order-consistent) winners."""

    def __init__(self, judges: list[PairwiseJudge], min_valid: int = 1, loop: Any = None) -> None:
        if not judges:
            raise ValueError("a panel needs at least one judge")
        self.judges, self.min_valid, self.loop = judges, min_valid, loop

    @property
    def flip_rate(self) -> float:
        pairs = sum(j.pairs for j in self.judges)
        return sum(j.inconsistent for j in self.judges) / pairs if pairs else 0.0

    def compare(self, a: str, b: str, prompt: Any = None) -> PairwiseVerdict:
        return run_blocking(self.acompare(a, b, prompt=prompt), self.loop)

    async def acompare(self, a: str, b: str, prompt: Any = None) -> PairwiseVerdict:
        verdicts = await asyncio.gather(*(j.acompare(a, b, prompt=prompt) for j in self.judges))
        valid = [v for v in verdicts if v.error is None]
        details = {"winners": [v.winner for v in verdicts], "judges": len(verdicts)}
        if len(valid) < max(self.min_valid, 1):
            return PairwiseVerdict(error=f"judge panel: {len(valid)} valid of {len(verdicts)}", details=details)
        return PairwiseVerdict(winner=majority_side([v.winner for v in valid]),
                               consistent=all(v.consistent for v in valid),
                               orders=[side for v in valid for side in v.orders],
                               reasons=[r for v in valid for r in v.reasons], details=details)
