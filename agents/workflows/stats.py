"""Per-workflow accounting for the summary: candidates, verified, yield, tokens, $ and $ per verified.

What it is for: one pure function, `workflow_stats(trajectories, passed)` (or its running form:
`add_to_sums` task by task, then `stats_from_sums`), that the generate loop's summary and the run
store can both record, so every workflow is compared on what a verified candidate costs (not on
what a sample costs). Failed rollouts (`error` set) are counted apart and still cost money.
What it does NOT do: verify (pass the verdicts in), or price anything (trajectories carry their cost).
"""

from __future__ import annotations

from typing import Sequence

from pydantic import BaseModel, computed_field

from agents.workflows.trajectory import Trajectory


class WorkflowStats(BaseModel):
    workflow: str
    candidates: int = 0      # trajectories without error
    errors: int = 0          # failed rollouts (error set), by count
    verified: int = 0        # candidates whose verdict passed
    tokens: int = 0          # prompt + completion tokens, every request of every trajectory
    cost_usd: float = 0.0
    requests: int = 0
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def yield_(self) -> float | None:
        return self.verified / self.candidates if self.candidates else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def usd_per_verified(self) -> float | None:
        return self.cost_usd / self.verified if self.verified else None


def workflow_stats(trajectories: Sequence[Trajectory], passed: Sequence[bool | None]) -> dict[str, WorkflowStats]:
    """Stats per workflow; `passed[i]` is the verdict of trajectory i (None: not verified / verifier error)."""
    return stats_from_sums(add_to_sums({}, trajectories, passed))


def add_to_sums(sums: dict[str, dict[str, float]], trajectories: Sequence[Trajectory],
                passed: Sequence[bool | None]) -> dict[str, dict[str, float]]:
    """Add trajectories to running per-workflow counters (a job adds one task at a time); returns `sums`."""
    if len(passed) != len(trajectories):
        raise ValueError(f"{len(trajectories)} trajectories but {len(passed)} verdicts")
    for trajectory, ok in zip(trajectories, passed):  # plain counters: pydantic attribute writes are slow
        acc = sums.get(trajectory.workflow)
        if acc is None:
            acc = sums[trajectory.workflow] = dict.fromkeys(_COUNTED, 0)
        failed = trajectory.error is not None
        acc["errors"] += failed
        acc["candidates"] += not failed
        acc["verified"] += bool(ok) and not failed
        acc["tokens"] += trajectory.usage.total_tokens
        acc["cost_usd"] += trajectory.cost_usd
        acc["requests"] += trajectory.requests
        acc["turns"] += trajectory.turns
        acc["tool_calls"] += trajectory.tool_calls
        acc["tool_errors"] += trajectory.tool_errors
    return sums


def stats_from_sums(sums: dict[str, dict[str, float]]) -> dict[str, WorkflowStats]:
    return {name: WorkflowStats(workflow=name, **acc) for name, acc in sums.items()}


_COUNTED = ("candidates", "errors", "verified", "tokens", "cost_usd", "requests", "turns", "tool_calls", "tool_errors")
