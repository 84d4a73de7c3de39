"""Per-workflow accounting: yield and $ per verified candidate, failed rollouts counted apart."""

import pytest

from agents.llm.types import Usage
from agents.workflows.stats import workflow_stats
from agents.workflows.trajectory import Trajectory


def traj(workflow, cost, error=None):
    return Trajectory(task_id="t", sample_index=0, workflow=workflow, model="m", messages=[], cost_usd=cost,
                      usage=Usage(prompt_tokens=10, completion_tokens=5), requests=1, error=error)


def test_yield_and_cost_per_verified():
    items = [traj("direct", 0.1), traj("direct", 0.1), traj("direct", 0.2, error="timeout"), traj("feedback", 0.5)]
    stats = workflow_stats(items, [True, False, None, False])
    direct = stats["direct"]
    assert (direct.candidates, direct.errors, direct.verified, direct.tokens) == (2, 1, 1, 45)
    assert direct.yield_ == 0.5 and direct.usd_per_verified == pytest.approx(0.4)
    assert stats["feedback"].usd_per_verified is None and stats["feedback"].yield_ == 0.0
    assert direct.model_dump()["usd_per_verified"] == pytest.approx(0.4)


def test_lengths_must_match():
    with pytest.raises(ValueError):
        workflow_stats([traj("direct", 0.1)], [])
