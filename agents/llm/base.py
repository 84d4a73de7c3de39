"""The one async chat interface every backend implements.

What it is for: workflows and `selfplay` call `await llm.chat(messages, params)` and never care
whether an API, a vLLM engine or an in-process model answers.
What it does not do: pricing, budgets or caching (see `agents.llm.metered`), or retries (each
backend retries what its own transport can fail at).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from agents.llm.types import ChatResult, Message, SamplingParams


@runtime_checkable
class LLM(Protocol):
    """An async chat-completions engine.

    `chat` sends ONE request for `params.n` samples and returns what came back, which may be fewer
    choices than asked (a server that caps `n`); `agents.llm.sampling.sample_k` tops up the rest.
    `supports_n` is False for engines known to refuse `n > 1`. `sample_offset` is the index of the
    first sample this call produces (part of the request's cache key; backends may ignore it).
    Optional attribute `max_n: int | None`: the most choices one request may ask for (configured, a
    provider default, or learned from a refusal by `agents.llm.sampling`, which sets it); absent or None
    means no cap is known. Wrappers should pass it through to (and from) the LLM they wrap.
    """

    model: str
    supports_n: bool

    async def chat(self, messages: list[Message], params: SamplingParams, *,
                   tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> ChatResult: ...

    async def aclose(self) -> None: ...
