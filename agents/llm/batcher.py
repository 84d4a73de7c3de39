"""Micro-batching of concurrent requests onto one worker thread.

What it is for: many coroutines call `chat` at once (64 tasks x n=8 is ordinary). `Batcher.submit(item, rows)`
parks each request; a dispatcher task waits `window_s` after the first arrival, takes up to `max_rows` rows of
parked requests (first come, first served; one oversized request goes alone), and runs them as ONE call of
`run_batch(items)` on a single worker thread, so torch is never entered twice at once and the event loop keeps
serving. Requests that arrive while a batch runs form the next batch. `run_exclusive(fn)` runs any other work
(a weight reload) on the same thread, between batches.
What it does not do: know anything about models or tokens; retry (a batch that raises fails each of its requests
with that exception); or preempt a running batch.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generic, Sequence, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


@dataclass
class BatchInfo:
    """What a request learns about the batch it ran in: wall seconds of the whole batch, and its size."""

    seconds: float
    requests: int
    rows: int


@dataclass
class _Parked(Generic[Item]):
    item: Item
    rows: int
    future: asyncio.Future


class Batcher(Generic[Item, Outcome]):
    """Collect concurrent submissions into batches for `run_batch(items) -> outcomes` (same order, same length).

    An outcome that is an exception instance fails only its own request.
    """

    def __init__(self, run_batch: Callable[[list[Item]], Sequence[Outcome | BaseException]], *,
                 window_s: float = 0.005, max_rows: int = 256, thread_name: str = "selfplay-batcher") -> None:
        self.run_batch = run_batch
        self.window_s = window_s
        self.max_rows = max_rows
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self.batches_run = 0
        self._parked: list[_Parked[Item]] = []
        self._dispatcher: asyncio.Task | None = None

    async def submit(self, item: Item, rows: int = 1) -> tuple[Outcome, BatchInfo]:
        """Park `item` until its batch has run; return its outcome and the batch's timing."""
        loop = asyncio.get_running_loop()
        parked = _Parked(item, max(1, rows), loop.create_future())
        self._parked.append(parked)
        if self._dispatcher is None or self._dispatcher.done() or self._dispatcher.get_loop() is not loop:
            self._dispatcher = loop.create_task(self._dispatch())
        return await parked.future

    async def run_exclusive(self, fn: Callable[[], Any]) -> Any:
        """Run `fn()` on the worker thread, after the batch in flight (if any) and before later ones."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._parked:
            await asyncio.sleep(self.window_s)
            batch = self._take_batch()
            if not batch:
                continue
            started = time.perf_counter()
            try:
                outcomes = await loop.run_in_executor(self.executor, self.run_batch, [p.item for p in batch])
            except BaseException as exc:  # noqa: BLE001 - the whole batch failed: each request gets the error
                for parked in batch:
                    _settle(parked.future, exc, None)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            self.batches_run += 1
            info = BatchInfo(seconds=time.perf_counter() - started, requests=len(batch),
                             rows=sum(p.rows for p in batch))
            for parked, outcome in zip(batch, outcomes, strict=True):
                _settle(parked.future, outcome, info)

    def _take_batch(self) -> list[_Parked[Item]]:
        """Up to `max_rows` rows of live requests, oldest first (at least one request)."""
        self._parked = [p for p in self._parked if not p.future.done()]  # drop cancelled callers
        batch: list[_Parked[Item]] = []
        rows = 0
        while self._parked and (not batch or rows + self._parked[0].rows <= self.max_rows):
            parked = self._parked.pop(0)
            batch.append(parked)
            rows += parked.rows
        return batch


def _settle(future: asyncio.Future, outcome: Any, info: BatchInfo | None) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result((outcome, info))
