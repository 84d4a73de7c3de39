"""The algorithm registry of `selfplay run`: what a round trains on and how, by name.

What it is for: the loop asks `algorithm_for(config)` for the round's algorithm and calls its `improve(ctx, round)`;
it knows no algorithm by name. Each entry (an `Algorithm`, see `base`) provides its training rows from the round's
verified candidates, its positives (what the audit re-checks), its train step and its trainer defaults:
- `sft`: rejection-sampling SFT (rules `rejection`, `best_of_k`, and `majority`: pseudo-labels by maj@K);
- `dpo`: passed-vs-failed preference pairs, iterative DPO (reference = the previous round);
- `grpo`: on-policy GRPO, `[train] iterations` sample -> update slices inside the round;
- `control`: the control arm (`[loop] arm = "control"`): the same steps on the seed rows alone.
To add an algorithm: a module here with an `Algorithm` subclass, one line in `REGISTRY`, its trainer in
`trainer.ALGORITHMS` (see docs/design.md "Add an algorithm").
What it does not do: order the phases of a round (`selfplay.jobs.round`) or the rounds (`selfplay.jobs.loop`).
"""

from __future__ import annotations

from typing import Any

from selfplay.jobs.algorithms.base import Algorithm
from selfplay.jobs.algorithms.control import Control
from selfplay.jobs.algorithms.dpo import DPO
from selfplay.jobs.algorithms.grpo import GRPO
from selfplay.jobs.algorithms.sft import SFT

__all__ = ["Algorithm", "REGISTRY", "algorithm_for", "get"]

REGISTRY: dict[str, Algorithm] = {a.name: a for a in (SFT(), DPO(), GRPO(), Control())}


def get(name: str) -> Algorithm:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(REGISTRY)}") from None


def algorithm_for(config: Any) -> Algorithm:
    """The round's algorithm: the control arm's, else `[train] algorithm`."""
    return get(Control.name if config.loop.arm == Control.name else config.train.algorithm)
