"""The `direct` workflow: one chain-of-thought answer per sample, K samples in one `n=K` request.

What it is for: the baseline every agentic workflow is compared with, and the cheapest way to get
K candidates (the server shares the prompt's prefill across the K samples). A batch that starts at
`first_index > 0` (adaptive K drawing more for the same task) gets its own seed and cache keys.
What it does not do: look at its own answers (see self_refine, feedback, tool_use).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from agents.llm.base import LLM
from agents.llm.types import LLMError, Message, SamplingParams
from agents.workflows.common import Rollout, first_turn, parse_options
from agents.workflows.steps import split_steps
from agents.workflows.trajectory import Trajectory

NAME = "direct"


class DirectOptions(BaseModel):
    """`direct` takes no options but a custom step separator (for the PRM)."""

    model_config = ConfigDict(extra="forbid")
    step_separator: str | None = None


async def run_direct(llm: LLM, task_id: str, messages: list[Message], params: SamplingParams,
                     k: int, *, first_index: int = 0, options: dict[str, Any] | None = None,
                     **_unused: Any) -> list[Trajectory]:
    """K trajectories for one prompt; a failed request becomes K trajectories with `error` set."""
    opts = parse_options(DirectOptions, options, NAME)
    rollouts = await first_turn(llm, NAME, task_id, messages, params, k, first_index)
    return [finish(rollout, opts.step_separator) for rollout in rollouts]


def finish(rollout: Rollout, separator: str | None = None) -> Trajectory:
    answer = rollout.last_text
    return rollout.to_trajectory(final_answer=answer, steps=split_steps(answer, separator), stop_reason="final")


def failed(model: str, task_id: str, messages: list[Message], index: int, exc: LLMError) -> Trajectory:
    """A trajectory for a sample whose request failed before any reply (kept for callers of the old API)."""
    rollout = Rollout(task_id, index, NAME, model, list(messages), len(messages))
    rollout.fail(exc)
    return finish(rollout)
