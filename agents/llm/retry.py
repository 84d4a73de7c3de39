"""Retry policy for LLM requests, on tenacity.

What it is for: retry what can succeed on a second try (429 honouring `Retry-After` /
`retry-after-ms`, 500/502/503/504, timeouts, dropped connections, a malformed reply a bounded
number of times) with exponential backoff and full jitter, up to a cap on attempts.
What it does not do: retry client errors (400/401/403/404 fail fast with the server's message),
or classify transport exceptions (each backend maps its own errors to `LLMError` first).
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from agents.llm.types import LLMError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0  # never sleep longer than this on a server's say-so


def is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, LLMError) and exc.retryable


def backoff_seconds(policy: RetryPolicy, attempt: int, retry_after: float | None) -> float:
    """Server hint if any (capped), else full-jitter exponential backoff: U(0, min(max, base*2^(n-1)))."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, policy.max_retry_after_s)
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2 ** (attempt - 1))
    return random.uniform(0, ceiling)


def _wait_after_first(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    """Backoff for tenacity's attempts, numbered after the bare first attempt."""
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint = exc.retry_after if isinstance(exc, LLMError) else None
        return backoff_seconds(policy, state.attempt_number + 1, hint)
    return wait


async def with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """Run `call` until it succeeds, raises a non-retryable error, or runs out of attempts.

    The first attempt runs bare (most requests succeed, and tenacity's bookkeeping is not free at
    thousands of requests per second); after a retryable failure tenacity runs the remaining
    attempts, the first of them after the backoff (or the server's hint) for attempt 1.
    """
    try:
        return await call()
    except LLMError as exc:
        if not exc.retryable or policy.max_attempts <= 1:
            raise
        await asyncio.sleep(backoff_seconds(policy, 1, exc.retry_after))
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts - 1),
        wait=_wait_after_first(policy),
        retry=retry_if_exception(is_retryable),
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            return await call()
    raise AssertionError("unreachable: tenacity reraises the last error")


def parse_retry_after(headers: dict[str, str] | None) -> float | None:
    """Seconds from `retry-after-ms` (OpenAI) or `Retry-After` (seconds; HTTP dates are ignored)."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / scale)
        except ValueError:
            continue
    return None
