"""The `self_refine` workflow: draft, critique, revise; up to R rounds, stopping when the critic accepts.

What it is for: better candidates from the same model (or a stronger / cheaper critic) by letting it
find and fix its own mistakes. The K drafts share one `n=K` request; each sample is then refined on
its own. The critic sees a fresh conversation (`critique_template` with the problem and the current
answer) and accepts when its reply matches `accept_pattern`; otherwise the policy gets
`revise_template` (with the critique) as a user turn in its own conversation and answers again.
The trajectory's `messages` are the policy conversation (prompt, draft, revise request, revision...);
each critic exchange is kept in `metadata["critiques"]` with its round and whether it accepted.
The final answer is the last revision; `steps` split that answer. Every request is seeded per
(sample, turn), so a resumed run replays all of it from the cache.
What it does NOT do: check answers against ground truth (that is `feedback`), or build the critic
LLM (the caller passes `critic_llm` when `critic_model` is set; else the policy critiques itself).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agents.llm.base import LLM
from agents.llm.types import Message, SamplingParams
from agents.workflows.common import (Regex, template_with,
                                     Rollout, first_turn, gather_rollouts, last_user_text, next_turn,
                                     parse_options, render, side_call)
from agents.workflows.steps import split_steps
from agents.workflows.trajectory import Trajectory

NAME = "self_refine"

CRITIQUE_TEMPLATE = """Review the following answer to a problem. Check each step for errors of reasoning or calculation.

Problem:
{question}

Answer:
{answer}

List the errors you find, if any. Then end with exactly one line: "VERDICT: CORRECT" if the answer is fully \
correct, or "VERDICT: INCORRECT" otherwise."""

REVISE_TEMPLATE = """A reviewer checked your answer and wrote:

{critique}

Taking this into account, write a corrected, complete answer to the original problem."""


class SelfRefineOptions(BaseModel):
    """Options of `self_refine` (`[generate.workflow_options]`). Templates fill `{question}`,
    `{answer}` and `{critique}` by plain replacement, so LaTeX and code braces need no escaping."""

    model_config = ConfigDict(extra="forbid")
    max_rounds: int = Field(default=2, ge=1, le=20)
    critique_template: template_with("answer") = CRITIQUE_TEMPLATE
    revise_template: template_with("critique") = REVISE_TEMPLATE
    accept_pattern: Regex = r"(?i)verdict\s*:\s*\**\s*correct\b"
    critic_model: str | None = None          # the caller builds this LLM and passes it as critic_llm
    critic_temperature: float | None = Field(default=0.0, ge=0.0)  # None: the policy's temperature
    critic_max_tokens: int | None = Field(default=None, ge=1)      # None: the policy's max_tokens
    step_separator: str | None = None





async def run_self_refine(llm: LLM, task_id: str, messages: list[Message], params: SamplingParams, k: int, *,
                          options: dict[str, Any] | None = None, first_index: int = 0,
                          critic_llm: LLM | None = None, **_unused: Any) -> list[Trajectory]:
    """K refined trajectories for one prompt."""
    opts = parse_options(SelfRefineOptions, options, NAME)
    if opts.critic_model and critic_llm is None:
        raise ValueError(f"workflow {NAME!r} options: critic_model: set to {opts.critic_model!r} "
                         "but no critic_llm was passed")
    critic = critic_llm or llm
    critic_params = params.with_(
        n=1, temperature=params.temperature if opts.critic_temperature is None else opts.critic_temperature,
        max_tokens=opts.critic_max_tokens or params.max_tokens)
    question = last_user_text(messages)
    rollouts = await first_turn(llm, NAME, task_id, messages, params, k, first_index)

    async def refine(rollout: Rollout) -> Trajectory:
        stop = "error" if rollout.error else await _refine_rounds(llm, critic, rollout, params, critic_params,
                                                                 question, opts)
        answer = rollout.last_text
        return rollout.to_trajectory(final_answer=answer, steps=split_steps(answer, opts.step_separator),
                                     stop_reason=stop)

    return await gather_rollouts(rollouts, refine)


async def _refine_rounds(llm: LLM, critic: LLM, rollout: Rollout, params: SamplingParams,
                         critic_params: SamplingParams, question: str, opts: SelfRefineOptions) -> str:
    """Critique and revise until accepted or out of rounds; returns the stop reason."""
    rollout.metadata["critiques"] = critiques = []
    for round_no in range(1, opts.max_rounds + 1):
        answer = rollout.last_text
        critic_messages = [{"role": "user", "content": render(opts.critique_template, question=question,
                                                              answer=answer)}]
        critique = await side_call(critic, rollout, critic_messages, critic_params, tag=f"critique:{round_no}")
        if critique is None:
            return "error"
        accepted = re.search(opts.accept_pattern, critique) is not None
        critiques.append({"round": round_no, "model": critic.model, "accepted": accepted,
                          "messages": [*critic_messages, {"role": "assistant", "content": critique}]})
        if accepted:
            return "accepted"
        rollout.messages.append({"role": "user", "content": render(opts.revise_template, critique=critique,
                                                                    question=question, answer=answer)})
        if await next_turn(llm, rollout, params) is None:
            return "error"
    return "max_rounds"
