"""K samples of one prompt, drawn as requests of `min(remaining, cap)` choices, at most `window` in flight.

What it is for: the one place that turns "K samples please" into requests. Each request asks for as many
choices as the server allows (servers share the prompt's prefill across them, and OpenAI bills the prompt once
per request), so K costs ceil(K / cap) requests. The cap (`agents.llm.ncap`) is the call's `max_n`, else the
LLM's `max_n` (configured, a provider default such as OpenAI's 128, or learned earlier in the job), else
unknown: then requests ask for at most `ncap.UNCAPPED_CHUNK` and the first goes alone, so a refusal is paid
once. A 400 that states a cap for `n` ("Expected a value <= 128", "n must be at most 16") is retried at that
cap and the cap is kept on the LLM (`llm.max_n`) for the rest of the job; only a refusal of any `n > 1`
("n must be 1", "'n' ... Only the default (1)") goes to single requests (`llm.supports_n = False`). A 400 that
names no cap halves the request until one is accepted (that size is kept as the cap); a 400 at n = 1 is
raised, being about something else. A reply with fewer choices than asked is topped up at that size.
Request i of a call covers samples [s, s + size): its seed is `params.seed + s` (when a seed is set) and its
`sample_offset` is s, so every request differs, and a resumed draw re-asks exactly what it asked before (the
local backend's row j of seed s is `Generator(s + j)`, so chunked and single draws give the same samples).
Choice indices are renumbered to the sample index s..s+size-1.

`sample_k` returns all K (ordered by sample index); `iter_k` yields each request's result as it lands, with
at most `window` requests in flight, so a caller can draw K = 1M holding one window of results.
What it does not do: retries of transient failures, pricing, budgets (the backend and `metered` do those),
or storing what it drew.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from agents.llm.base import LLM
from agents.llm.ncap import UNCAPPED_CHUNK, known_cap, parse_n_refusal, remember_cap
from agents.llm.types import ChatResult, Choice, LLMError, Message, SamplingParams

DEFAULT_WINDOW = 64
"""Requests in flight per `sample_k` / `iter_k` call unless told otherwise (the backends bound theirs too)."""


async def sample_k(llm: LLM, messages: list[Message], params: SamplingParams, k: int, *,
                   tools: list[dict[str, Any]] | None = None, max_n: int | None = None,
                   window: int = DEFAULT_WINDOW) -> list[ChatResult]:
    """The results whose choices, in order, make up K samples (choice indices 0..K-1), ordered by sample index."""
    async with aclosing(_draws(llm, messages, params, k, 0, tools, max_n, window)) as draws:
        drawn = [pair async for pair in draws]
    drawn.sort(key=lambda pair: pair[0])
    return [result for _, result in drawn]


async def iter_k(llm: LLM, messages: list[Message], params: SamplingParams, k: int, *, start: int = 0,
                 window: int = DEFAULT_WINDOW, tools: list[dict[str, Any]] | None = None,
                 max_n: int | None = None) -> AsyncIterator[ChatResult]:
    """Samples start..start+k-1, one result per request as it lands, at most `window` requests in flight.

    Within a result the choices are in sample order, numbered by sample index; results come in the order they
    land. Close the generator early with `contextlib.aclosing` so its requests in flight are cancelled.
    """
    async with aclosing(_draws(llm, messages, params, k, start, tools, max_n, window)) as draws:
        async for _, result in draws:
            yield result


class _Plan:
    """Which samples are still to be asked for, how many per request, and what refusals taught."""

    def __init__(self, llm: LLM, start: int, k: int, max_n: int | None) -> None:
        self.llm, self.max_n = llm, max_n
        self.next_start, self.end = start, start + k
        self.redo: deque[tuple[int, int]] = deque()  # [start, end) ranges to ask for again
        self.guess: int | None = None  # this call's own bound: short replies, refusals that name no cap
        self.searching = False  # halving after a refusal that named no cap: keep the first size that works
        self.trusted = known_cap(llm, max_n) is not None  # else the next request goes alone

    def cap(self) -> int:
        known = known_cap(self.llm, self.max_n)
        caps = [c for c in (known, self.guess) if c is not None]
        return min(caps) if caps else (UNCAPPED_CHUNK if known is None else known)

    def pending(self) -> bool:
        return bool(self.redo) or self.next_start < self.end

    def may_launch(self, in_flight: int, window: int) -> bool:
        if not self.pending() or in_flight >= window:
            return False
        if self.searching:  # the size now asked for is unproven: one request at a time
            return in_flight == 0
        return in_flight == 0 or self.trusted or self.cap() == 1

    def take(self) -> tuple[int, int]:
        cap = self.cap()
        if self.redo:
            first, end = self.redo.popleft()
            size = min(end - first, cap)
            if first + size < end:
                self.redo.appendleft((first + size, end))
            return first, size
        first, size = self.next_start, min(self.end - self.next_start, cap)
        self.next_start += size
        return first, size

    def refused(self, first: int, size: int, exc: LLMError) -> None:
        """Re-plan a refused request at the cap the refusal states (or half its size); raise what is not an n cap."""
        if exc.kind != "bad_request" or size <= 1:
            raise exc
        found = parse_n_refusal(exc.message, asked=size, param=getattr(exc, "param", None))
        if found is None:
            self.guess, self.searching, self.trusted = size // 2, True, False
        elif found.remember:
            remember_cap(self.llm, found.cap)
            self.trusted = True
        else:
            self.guess = found.cap if self.guess is None else min(self.guess, found.cap)
        self.redo.appendleft((first, first + size))

    def landed(self, first: int, size: int, got: int) -> None:
        """Note a reply of `got` choices to a request for `size`; ask again for what it lacked."""
        self.trusted = True
        if self.searching and size == self.guess and got >= size:
            remember_cap(self.llm, size)
            self.searching = False
        if 0 < got < size:
            self.guess = got if self.guess is None else min(self.guess, got)
            self.redo.append((first + got, first + size))


async def _draws(llm: LLM, messages: list[Message], params: SamplingParams, k: int, start: int,
                 tools: list[dict[str, Any]] | None, max_n: int | None,
                 window: int) -> AsyncIterator[tuple[int, ChatResult]]:
    """(first sample index, result) per accepted request, as they land."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    plan = _Plan(llm, start, max(k, 0), max_n)
    in_flight: set[asyncio.Task[tuple[int, int, ChatResult | LLMError]]] = set()
    try:
        while plan.pending() or in_flight:
            while plan.may_launch(len(in_flight), window):
                first, size = plan.take()
                in_flight.add(asyncio.ensure_future(_request(llm, messages, params, tools, first, size)))
            done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            for first, size, outcome in sorted((task.result() for task in done), key=lambda t: t[0]):
                if isinstance(outcome, LLMError):
                    plan.refused(first, size, outcome)
                    continue
                plan.landed(first, size, min(len(outcome.choices), size))
                yield first, _renumbered(outcome, first, size)
    finally:
        for task in in_flight:
            task.cancel()
        await asyncio.gather(*in_flight, return_exceptions=True)


async def _request(llm: LLM, messages: list[Message], params: SamplingParams, tools: list[dict[str, Any]] | None,
                   first: int, size: int) -> tuple[int, int, ChatResult | LLMError]:
    """One request for samples [first, first + size); an `LLMError` is returned, to be judged by the plan."""
    seed = None if params.seed is None else params.seed + first
    try:
        result = await llm.chat(messages, params.with_(n=size, seed=seed), tools=tools, sample_offset=first)
    except LLMError as exc:
        return first, size, exc
    return first, size, result


def _renumbered(result: ChatResult, first: int, size: int) -> ChatResult:
    """The result's first `size` choices numbered first, first+1, ...; returned as is when already so."""
    kept: list[Choice] = []
    for position, choice in enumerate(result.choices[:size]):
        index = first + position
        kept.append(choice if choice.index == index else _numbered(choice, index))
    same = len(kept) == len(result.choices) and all(a is b for a, b in zip(kept, result.choices))
    return result if same else result.model_copy(update={"choices": kept})


def _numbered(choice: Choice, index: int) -> Choice:
    """The choice numbered `index`: built anew (a third cheaper than `model_copy`, which copies generically;
    a reply's 128 choices are renumbered to their sample indices)."""
    if type(choice) is not Choice:  # a backend's own subclass keeps its class and fields
        return choice.model_copy(update={"index": index})
    return Choice(index=index, message=choice.message, finish_reason=choice.finish_reason,
                  token_ids=choice.token_ids, logprobs=choice.logprobs)
