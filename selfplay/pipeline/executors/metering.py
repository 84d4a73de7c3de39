"""Metering for requests sent by Ray workers: a request lost with its worker is charged, then sent again.

What it is for: `ClusterMeteredLLM` is `agents.llm.metered.MeteredLLM` (cache -> reserve -> send ->
settle, one ledger, one run store, all in the driver) plus one rule. When the worker carrying a
request dies (`worker_lost`), nobody can know whether the endpoint billed it, so its reservation is
settled at its WORST CASE (like an orphaned reservation after a killed driver: caps stay safe), with
error `worker_lost` in the ledger (the summary's `failed_requests`), and the request is sent again
(cache lookup first, then a fresh reservation) up to `max_worker_losses` times. The re-sent request
has the same content key, so its reply lands in the same cache entry and the results equal an
uninterrupted run's. Only a request that was on the wire when its worker died can be paid twice.
Built through the LLM factory (`selfplay.pipeline.llm.build_metered(..., kind=ClusterMeteredLLM)`).
What it does NOT do: retry transport errors (the worker's client does) or pick workers (`ray_backend`).
"""

from __future__ import annotations

from typing import Any

from agents.llm.metered import MeteredLLM
from agents.llm.types import ChatResult, LLMError, Message, SamplingParams
from agents.money.ledger import BudgetLedger, Reservation
from selfplay.pipeline.executors.ray_backend import WORKER_LOST


class WorkerLossLedger:
    """The job's `BudgetLedger`, except that a `worker_lost` settlement counts the reservation's worst case."""

    def __init__(self, ledger: BudgetLedger) -> None:
        self.inner = ledger

    def reserve(self, usd: float, tokens: int, key: str = "") -> Reservation:
        return self.inner.reserve(usd, tokens, key=key)

    async def areserve(self, usd: float, tokens: int, key: str = "") -> Reservation:
        return await self.inner.areserve(usd, tokens, key=key)

    def settle(self, reservation: Reservation, usd: float, tokens: int,
               payload: dict[str, Any] | None = None) -> None:
        if payload and payload.get("error") == WORKER_LOST:
            usd, tokens = reservation.usd, reservation.tokens
        self.inner.settle(reservation, usd, tokens, payload)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class ClusterMeteredLLM(MeteredLLM):
    def __init__(self, inner: Any, *, price: Any, ledger: BudgetLedger, cache: Any = None,
                 max_worker_losses: int = 3) -> None:
        super().__init__(inner, price=price, ledger=WorkerLossLedger(ledger), cache=cache)  # type: ignore[arg-type]
        self.max_worker_losses = max_worker_losses
        self.worker_losses = 0

    async def chat(self, messages: list[Message], params: SamplingParams, *,
                   tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> ChatResult:
        losses = 0
        while True:
            try:
                return await super().chat(messages, params, tools=tools, sample_offset=sample_offset)
            except LLMError as exc:
                if exc.kind != WORKER_LOST or losses >= self.max_worker_losses:
                    raise
                losses += 1
                self.worker_losses += 1
