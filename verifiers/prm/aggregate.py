"""Turn per-step scores (each a probability that the step is right) into one score for the solution.

What it is for: the four rules in use, as small pure functions, and `steps_verdict`, which every PRM here
(model-based or LLM-as-PRM) uses to build its Verdict.
  min      the weakest step decides: a solution is as good as its worst step (Math-Shepherd, Lightman et al.)
  product  all steps right, if steps were independent: punishes long solutions more than min
  last     the score at the last step: for PRMs trained on "can this prefix still reach the answer?"
           labels (Math-Shepherd soft/hard labels), the last prefix is the whole solution
  mean     the average step: the most forgiving, smooths one bad step over many good ones
The default is "product". `docs/judge-prm.md` says how that was chosen and where it was measured.
What it does not do: score steps (the PRMs do) or split text into steps (`verifiers.prm.steps`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from verifiers.verdict import Verdict


def agg_min(scores: Sequence[float]) -> float:
    return min(scores)


def agg_product(scores: Sequence[float]) -> float:
    return math.prod(scores)


def agg_last(scores: Sequence[float]) -> float:
    return scores[-1]


def agg_mean(scores: Sequence[float]) -> float:
    return sum(scores) / len(scores)


AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "min": agg_min, "product": agg_product, "last": agg_last, "mean": agg_mean,
}
DEFAULT_AGGREGATION = "product"


def aggregate(scores: Sequence[float], method: str = DEFAULT_AGGREGATION) -> float:
    """One score in [0, 1] from step scores in [0, 1] by `method` (min, product, last, mean)."""
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}: use one of {', '.join(AGGREGATIONS)}")
    if not scores:
        raise ValueError("no step scores to aggregate")
    return min(max(float(AGGREGATIONS[method](list(scores))), 0.0), 1.0)


def steps_verdict(step_scores: Sequence[float], method: str = DEFAULT_AGGREGATION, pass_threshold: float = 0.5,
                  **details: Any) -> Verdict:
    """The Verdict of a solution from its step scores; no steps at all is an error (nothing was checked)."""
    if not step_scores:
        return Verdict.broken("prm: the response has no steps to score", **details)
    scores = [min(max(float(s), 0.0), 1.0) for s in step_scores]
    score = aggregate(scores, method)
    weakest = min(range(len(scores)), key=scores.__getitem__)
    reason = f"prm {method} {score:.3f} over {len(scores)} steps (weakest: step {weakest + 1}, {scores[weakest]:.3f})"
    return Verdict(passed=score >= pass_threshold, score=score, reason=reason, step_scores=scores,
                   details={"aggregation": method, **details})
