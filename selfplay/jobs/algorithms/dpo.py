"""DPO in the loop: passed-vs-failed pairs of the same task, iterative (the reference is the previous round).

What it is for: `[train] algorithm = "dpo"`. Defaults measured on the demo (docs/trainer.md "DPO in the loop"):
SFT's shared lr, beta 0.1, an RPO NLL term on chosen (`rpo_alpha` 1: without it chosen answers lose ~2.8 nats per
round), up to 10 passes over the round's pairs (`max_epochs`).
What it does not do: the loss (`trainer.dpo`), or pair selection rules (`selfplay.pipeline.select.preference_pairs`).
"""

from __future__ import annotations

from typing import Any, Callable

from selfplay.core.candidate import Candidate
from selfplay.jobs.algorithms.base import Algorithm
from selfplay.pipeline.datasets import preference_row
from selfplay.pipeline.select import has_pair, preference_pairs


class DPO(Algorithm):
    name = "dpo"
    defaults = {"rpo_alpha": 1.0, "max_epochs": 10.0}

    def rows(self, groups: dict[str, list[Candidate]], select: Any) -> list[dict[str, Any]]:
        return [preference_row(c, r) for g in groups.values() for c, r in preference_pairs(g, select.max_pairs)]

    def has_signal(self, group: list[Candidate]) -> bool:
        return has_pair(group)  # a task teaches DPO only with a passed and a failed answer

    def trainer(self) -> Callable[..., dict[str, Any]]:
        from trainer.dpo import train_dpo
        return train_dpo
