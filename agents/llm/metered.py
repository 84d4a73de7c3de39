"""Metering: the content-keyed cache, budget reservation and pricing around any LLM backend.

What it is for: `MeteredLLM(inner, price, ledger, cache)` is itself an `LLM`. For each request it
(1) looks the request up by content key (model, messages, sampling parameters, seed, tools, sample
offset) and returns a stored reply at $0; else (2) reserves the worst case (prompt upper bound +
max_tokens x n, priced) in the ledger, which waits while it does not fit only because requests are
in flight and refuses once nothing is in flight and it still does not fit (so the loop, generate,
prm-label and every workflow turn spend a cap to the end), and waits until the reservation is on record; (3) sends; (4) settles the reservation to the real cost and hands the
reply to the ledger's backend, which stores it under the key in the same write. A resumed job
therefore never pays twice for a stored reply.
What it does not do: retries (the backend's), or top-ups of missing choices (`sampling`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from agents.llm.base import LLM
from agents.llm.tokens import prompt_token_upper_bound
from agents.llm.types import ChatResult, LLMError, Message, SamplingParams
from agents.money.ledger import BudgetLedger
from agents.money.prices import ModelPrice


class ResponseCache(Protocol):
    """Read side of the request cache; writes go through the ledger's settlement."""

    def get_response(self, key: str) -> dict[str, Any] | None: ...


class MemoryCache:
    """An in-process cache for users of `agents` without a run store."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}

    def get_response(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, result: dict[str, Any]) -> None:
        self.entries[key] = result


def request_key(model: str, messages: list[Message], params: SamplingParams,
                tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> str:
    """Stable content key of one request (sha256 of canonical JSON)."""
    body = {"model": model, "messages": messages, "params": params.model_dump(mode="json"),
            "tools": tools or None, "sample_offset": sample_offset}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


class MeteredLLM:
    """Cache -> reserve -> send -> settle around `inner`. Counters are for this process's session.

    `price=None` means the backend prices itself (an in-process model billed by hardware time): it
    must then offer `worst_case_usd(messages, params)` and fill `ChatResult.cost_usd`.
    """

    def __init__(self, inner: LLM, *, price: ModelPrice | None, ledger: BudgetLedger,
                 cache: ResponseCache | None = None) -> None:
        self.inner = inner
        self.supports_n = inner.supports_n
        self.price = price
        self.ledger = ledger
        self.cache = cache
        self.cache_hits = 0

    @property
    def max_n(self) -> int | None:
        """The inner backend's cap on choices per request (`agents.llm.ncap`); a learned cap is kept there."""
        return getattr(self.inner, "max_n", None)

    @max_n.setter
    def max_n(self, value: int | None) -> None:
        self.inner.max_n = value

    @property
    def model(self) -> str:
        """The inner backend's current model id (a backend that reloads weights changes it, and so the cache key)."""
        return self.inner.model

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def chat(self, messages: list[Message], params: SamplingParams, *,
                   tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> ChatResult:
        key = request_key(self.model, messages, params, tools, sample_offset)
        cached = self.cache.get_response(key) if self.cache else None
        if cached is not None:
            self.cache_hits += 1
            return ChatResult.model_validate(cached).model_copy(
                update={"cache_hit": True, "cost_usd": 0.0, "requests": 0, "latency_s": 0.0})
        worst_tokens, worst_usd = self._worst_case(messages, params, tools)
        reservation = await self.ledger.areserve(worst_usd, worst_tokens, key=key)
        try:
            result = await self.inner.chat(messages, params, tools=tools, sample_offset=sample_offset)
        except BaseException as exc:
            # Nothing came back: billed nothing we can see. Record the failure, settle at 0.
            kind = exc.kind if isinstance(exc, LLMError) else type(exc).__name__
            self.ledger.settle(reservation, 0.0, 0, {"key": key, "error": kind})
            raise
        if self.price is not None:
            result = result.model_copy(update={"cost_usd": self.price.cost(result.usage)})
        self.ledger.settle(reservation, result.cost_usd, result.usage.total_tokens,
                           {"key": key, "result": result.model_dump(mode="json")})
        if isinstance(self.cache, MemoryCache):
            self.cache.put(key, result.model_dump(mode="json"))
        return result

    def _worst_case(self, messages: list[Message], params: SamplingParams,
                    tools: list[dict[str, Any]] | None) -> tuple[int, float]:
        prompt = prompt_token_upper_bound(messages, tools)
        completion = params.max_tokens * params.n
        if self.price is None:
            return prompt + completion, float(self.inner.worst_case_usd(messages, params))  # type: ignore[attr-defined]
        return prompt + completion, self.price.worst_case(prompt, completion)
