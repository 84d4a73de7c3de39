"""Turn an `agents` LLM into the `JudgeLLM` that `verifiers.judge` and `verifiers.prm` ask questions of.

What it is for: `verifiers` imports nothing of ours, so its judges speak a one-method protocol
(`complete(messages, *, max_tokens, temperature, response_format, tools) -> str`). `AgentsJudgeLLM(llm)`
implements it over any `agents` LLM; pass a `MeteredLLM` and every judge call goes through the content
cache, is reserved in the budget ledger before it is sent, and is priced after, like every other call of
the job (a refused reservation surfaces as a Verdict with `error` and `details["error_kind"] == "budget"`).
It also keeps its own counters (calls, tokens, USD) for the judge's line in a report.
What it does not do: JSON-schema mode. The `agents` chat interface has no `response_format` yet, so this
adapter declares the modes it can honour, ("tools", "text"): tool calling, else plain text read by the
judge's tolerant parser.
"""

from __future__ import annotations

import json
from typing import Any

from agents.llm.types import ChatResult, Message, SamplingParams, Usage

DEFAULT_MODES = ("tools", "text")


class AgentsJudgeLLM:
    """A `verifiers.judge.JudgeLLM` over an `agents` LLM (see the module docstring)."""

    def __init__(self, llm: Any, *, structured_modes: tuple[str, ...] = DEFAULT_MODES, seed: int | None = 0) -> None:
        unsupported = set(structured_modes) - set(DEFAULT_MODES)
        if unsupported:
            raise ValueError(f"the agents chat interface cannot do {sorted(unsupported)}; use {DEFAULT_MODES}")
        self.llm = llm
        self.model = llm.model
        self.structured_modes = tuple(structured_modes)
        self.seed = seed
        self.calls = 0
        self.cost_usd = 0.0
        self.usage = Usage()

    async def complete(self, messages: list[Message], *, max_tokens: int, temperature: float,
                       response_format: dict[str, Any] | None = None,
                       tools: list[dict[str, Any]] | None = None) -> str:
        if response_format is not None:
            raise ValueError("response_format (JSON-schema mode) is not supported by the agents LLM interface; "
                             "use mode 'tools' or 'text'")
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, n=1, seed=self.seed)
        result = await self.llm.chat(messages, params, tools=tools)
        self._count(result)
        return reply_text(result, tools)

    def _count(self, result: ChatResult) -> None:
        self.calls += 1
        self.cost_usd += result.cost_usd
        self.usage = self.usage + result.usage

    async def aclose(self) -> None:
        await self.llm.aclose()


def reply_text(result: ChatResult, tools: list[dict[str, Any]] | None) -> str:
    """The first choice's tool-call arguments (when tools were offered and one was called), else its text."""
    if not result.choices:
        return ""
    message = result.choices[0].message
    calls = message.get("tool_calls") or []
    if tools and calls:
        wanted = {t.get("function", {}).get("name") for t in tools}
        chosen = next((c for c in calls if c.get("function", {}).get("name") in wanted), calls[0])
        arguments = chosen.get("function", {}).get("arguments", "")
        return arguments if isinstance(arguments, str) else json.dumps(arguments)
    return str(message.get("content") or "")
