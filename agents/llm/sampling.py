"""K samples of one prompt: `n=K` in one request, topped up with single requests when needed.

What it is for: the one place that turns "K samples please" into requests. It asks for all K in
one request (servers share the prompt's prefill across them). If the server refuses `n > 1` (HTTP
400) or returns fewer choices, the rest come from separate `n=1` requests, each with its own sample
offset (and seed + offset when a seed is set) so their cache keys and samples differ.
What it does not do: retries, pricing, budgets (the backend and `metered` do those).
"""

from __future__ import annotations

import asyncio
from typing import Any

from agents.llm.base import LLM
from agents.llm.types import ChatResult, Choice, LLMError, Message, SamplingParams


async def sample_k(llm: LLM, messages: list[Message], params: SamplingParams, k: int, *,
                   tools: list[dict[str, Any]] | None = None) -> list[ChatResult]:
    """Return the results whose choices, in order, make up K samples (choice indices re-numbered 0..K-1)."""
    results: list[ChatResult] = []
    got = 0
    refused_n = False
    if k > 1 and llm.supports_n:
        try:
            first = await llm.chat(messages, params.with_(n=k), tools=tools, sample_offset=0)
            results.append(first)
            got = min(len(first.choices), k)
        except LLMError as exc:
            if exc.kind != "bad_request":
                raise
            refused_n = True
    singles = [_single(llm, messages, params, offset, tools) for offset in range(got, k)]
    results.extend(await asyncio.gather(*singles))
    if refused_n:  # n=1 worked where n=K was refused: single requests from now on
        llm.supports_n = False
    return _renumber(results, k)


async def _single(llm: LLM, messages: list[Message], params: SamplingParams, offset: int,
                  tools: list[dict[str, Any]] | None) -> ChatResult:
    seed = None if params.seed is None else params.seed + offset
    return await llm.chat(messages, params.with_(n=1, seed=seed), tools=tools, sample_offset=offset)


def _renumber(results: list[ChatResult], k: int) -> list[ChatResult]:
    """Choices numbered 0..K-1 across the results; a result that needs no change is returned as is."""
    index = 0
    out = []
    for result in results:
        kept: list[Choice] = []
        for choice in result.choices:
            if index >= k:
                break
            kept.append(choice if choice.index == index else choice.model_copy(update={"index": index}))
            index += 1
        same = len(kept) == len(result.choices) and all(a is b for a, b in zip(kept, result.choices))
        out.append(result if same else result.model_copy(update={"choices": kept}))
    return out
