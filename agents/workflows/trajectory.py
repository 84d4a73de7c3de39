"""The Trajectory record: one candidate answer with everything that produced it.

What it is for: the output of every workflow (direct, self-refine, tool use, feedback): every
message (tool calls and tool results included), the reasoning split into steps (for the process
reward model), the final answer text, usage, cost and request counts, and (when the backend returned them)
the token ids and log-probs of the last message as sampled: `completion_token_ids` / `completion_logprobs`
belong to `messages[-1]`, an assistant turn (set only when the trajectory ends on one), so a trainer can train
on exactly those tokens instead of re-encoding the text. `selfplay` stores it as a
Candidate. Plain data (pydantic), JSON-serialisable.
What it does not do: judge the answer (verifiers do), or know about rounds of training.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from agents.llm.types import Message, Usage


class Trajectory(BaseModel):
    task_id: str
    sample_index: int
    workflow: str
    model: str
    messages: list[Message]          # the whole conversation, prompt included
    prompt_messages: int = 1         # how many leading messages are the prompt (not generated)
    final_answer: str = ""           # the candidate: text of the last assistant answer
    steps: list[str] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    requests: int = 0                # HTTP requests / engine calls actually sent
    cache_hits: int = 0
    turns: int = 0                   # assistant turns generated
    tool_calls: int = 0              # tool calls the model made (fenced code blocks run count too)
    tool_errors: int = 0             # of which malformed (bad JSON, unknown tool, no code) or failed to run
    stop_reason: str | None = None   # why the workflow stopped: final | accepted | max_rounds | turn_limit |
                                     # passed | max_attempts | check_error | error
    error: str | None = None         # an error kind when the rollout failed (recorded, not scored)
    error_message: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    completion_token_ids: list[int] | None = None   # messages[-1] (assistant) as sampled (see `Choice.token_ids`)
    completion_logprobs: list[float] | None = None  # one per completion token, unscaled distribution

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def completion_messages(self) -> list[Message]:
        return self.messages[self.prompt_messages:]
