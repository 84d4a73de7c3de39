"""Rejection-sampling SFT: the round's passed candidates (or best-of-K, or maj@K pseudo-labels) as SFT rows.

What it is for: `[train] algorithm = "sft"` (the default). `[select] rule` picks the positives: `rejection` (passed,
deduplicated, `cap_per_task`), `best_of_k` (the best-scoring candidate when it passed), `majority` (the candidates that
agree with the maj@K answer, no reference needed). `[train] replay_seed` adds the seed rows to every round.
What it does not do: the selection rules themselves (`selfplay.pipeline.select`).
"""

from __future__ import annotations

from typing import Any, Callable

from selfplay.core.candidate import Candidate
from selfplay.jobs.algorithms.base import Algorithm
from selfplay.pipeline.datasets import sft_row
from selfplay.pipeline.metrics import by_task
from selfplay.pipeline.select import best_of_k, majority_label, rejection_sample


class SFT(Algorithm):
    name = "sft"
    replays_seed = True

    def rows(self, groups: dict[str, list[Candidate]], select: Any) -> list[dict[str, Any]]:
        return [sft_row(c) for g in groups.values() for c in choose(g, select)]

    def positives(self, items: list[Candidate], select: Any) -> list[Candidate]:
        if select.rule == "majority":  # the pseudo-labelled candidates (what the audit must catch)
            return [c for g in by_task(items).values() for c in choose(g, select)]
        return super().positives(items, select)

    def trainer(self) -> Callable[..., dict[str, Any]]:
        from trainer.sft import train_sft
        return train_sft


def choose(group: list[Candidate], select: Any) -> list[Candidate]:
    """The SFT positives of one task under `[select] rule`."""
    if select.rule == "best_of_k":
        best = best_of_k(group)
        return [best] if best is not None and best.passed else []
    if select.rule == "majority":  # pseudo-labels: agree with the maj@K answer (no reference needed)
        label = majority_label(group, select.majority_threshold)
        agreeing = [c for c in group if label is not None and c.answer == label and c.judged]
        return rejection_sample([_as_passed(c) for c in agreeing], select.cap_per_task)
    return rejection_sample(group, select.cap_per_task)


def _as_passed(candidate: Candidate) -> Candidate:
    return candidate.with_verdict(candidate.verdict.model_copy(update={"passed": True, "score": 1.0}))
