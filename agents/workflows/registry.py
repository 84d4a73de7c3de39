"""One entry point for every workflow: `run_workflow(name, llm, task_id, messages, params, k, ...)`.

What it is for: the generate loop calls one function whatever `[generate] workflow` says, and can
validate `[generate.workflow_options]` at startup (`validate_options`), before anything is spent.
Every workflow returns exactly K trajectories, sample indices `first_index .. first_index + K - 1`.

Errors, as data: a request that fails mid-trajectory (any `LLMError`) ends that trajectory with `error`
set to its kind and every message so far kept; the other samples carry on. A `BudgetExceeded` is
recorded the same way, as error "budget" (it is not raised: the samples that finished are still
returned); the caller checks `budget_exhausted(trajectories)` and stops drawing. Bad options or a
missing tool / check raise `ValueError` before any request is sent.
What it does NOT do: verify, store, or choose K (see `adaptive`, `dedup`, and selfplay's loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from pydantic import BaseModel

from agents.llm.base import LLM
from agents.llm.types import Message, SamplingParams
from agents.workflows import direct, feedback, self_refine, tool_use
from agents.workflows.common import parse_options
from agents.workflows.trajectory import Trajectory


@dataclass(frozen=True)
class WorkflowSpec:
    run: Callable[..., Awaitable[list[Trajectory]]]
    options: type[BaseModel]
    needs_check: bool = False
    needs_tool: bool = False


WORKFLOWS: dict[str, WorkflowSpec] = {
    direct.NAME: WorkflowSpec(direct.run_direct, direct.DirectOptions),
    self_refine.NAME: WorkflowSpec(self_refine.run_self_refine, self_refine.SelfRefineOptions),
    tool_use.NAME: WorkflowSpec(tool_use.run_tool_use, tool_use.ToolUseOptions, needs_tool=True),
    feedback.NAME: WorkflowSpec(feedback.run_feedback, feedback.FeedbackOptions, needs_check=True),
}


def spec(name: str) -> WorkflowSpec:
    if name not in WORKFLOWS:
        raise ValueError(f"unknown workflow {name!r}; choose one of {sorted(WORKFLOWS)}")
    return WORKFLOWS[name]


def validate_options(name: str, options: dict[str, Any] | None) -> BaseModel:
    """The parsed options of workflow `name`; ValueError naming the bad key (or the unknown workflow)."""
    return parse_options(spec(name).options, options, name)


async def run_workflow(name: str, llm: LLM, task_id: str, messages: list[Message] | str, params: SamplingParams,
                       k: int, *, options: dict[str, Any] | None = None,
                       check: feedback.Check | None = None, tool: tool_use.Tool | None = None,
                       first_index: int = 0, critic_llm: LLM | None = None) -> list[Trajectory]:
    """K trajectories of workflow `name` for one prompt (a string prompt is one user message).

    `check` (answer text -> CheckResult | bool | Verdict-like; sync or async) is required by `feedback`;
    `tool` (code -> output text or a sandbox result; sync or async) by `tool_use`; `critic_llm` is the
    critic of `self_refine` when its options name a `critic_model` (else the policy critiques itself).
    """
    chosen = spec(name)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if chosen.needs_check and check is None:
        raise ValueError(f"workflow {name!r} needs a check: set [generate] verifier")
    if chosen.needs_tool and tool is None:
        raise ValueError(f"workflow {name!r} needs a tool (the code sandbox)")
    prompt = [{"role": "user", "content": messages}] if isinstance(messages, str) else list(messages)
    return await chosen.run(llm, task_id, prompt, params, k, options=options, check=check, tool=tool,
                            first_index=first_index, critic_llm=critic_llm)


def budget_exhausted(trajectories: list[Trajectory]) -> bool:
    """True when a request of this batch was refused by the budget: stop drawing more samples."""
    return any(t.error == "budget" for t in trajectories)
