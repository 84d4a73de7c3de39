"""The `openai` backend in batch mode: requests go through the provider's Batch API at its batch price.

What it is for: `OpenAIBatchBackend` is an `LLM` whose `chat` calls are gathered for `flush_s` seconds
(or until `max_requests` / `max_bytes`, the provider's per-batch limits) into one JSONL file, uploaded
(`POST /v1/files`, purpose "batch"), submitted (`POST /v1/batches`, `completion_window = "24h"`) and
polled every `poll_s` seconds; each call is answered from its own output line (its `usage`; the caller
prices it at the batch price, see `ModelPrice.batch`). A line that failed, or that an expired batch
never reached, is an `LLMError` the retry policy sends again in a later batch: only the missing
requests are re-queued. Resume: with a `journal` (an object with `get_meta` / `set_meta`, such as
selfplay's run store) every submitted batch and its request ids are on record before it is polled, so a
killed job's re-run polls the same batch for those requests instead of paying for them again.
What it does not do: budget (each call is reserved by `MeteredLLM` before it reaches the batch, so a
batch's whole worst case is held before it is submitted), price, cache, or Anthropic's Message Batches.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from typing import Any

import openai

from agents.llm.openai_backend import list_model_ids, map_error, request_body, to_chat_result
from agents.llm.retry import RetryPolicy, with_retries
from agents.llm.types import ChatResult, LLMError, Message, SamplingParams

PENDING_KEY = "batches_pending"  # journal key: ids of submitted batches not yet collected
TERMINAL = ("completed", "expired", "failed", "cancelled")


class OpenAIBatchBackend:
    """Chat completions through `/v1/batches` against an OpenAI-compatible server."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, retry: RetryPolicy | None = None, supports_n: bool = True,
                 extra_body: dict[str, Any] | None = None, poll_s: float = 5.0, flush_s: float = 0.5,
                 max_requests: int = 50_000, max_bytes: int = 190_000_000, journal: Any = None) -> None:
        self.model = model
        self.supports_n = supports_n
        self.retry = retry or RetryPolicy()
        self.extra_body = extra_body or {}
        self.poll_s, self.flush_s = poll_s, flush_s
        self.max_requests, self.max_bytes = max_requests, max_bytes
        self.attempt_errors: Counter[str] = Counter()
        self.batches_submitted = 0
        self.batches_resumed = 0
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "EMPTY", timeout=timeout_s,
                                          max_retries=2)
        self._pending: dict[str, tuple[bytes, list[asyncio.Future]]] = {}
        self._pending_bytes = 0
        self._flusher: asyncio.Task | None = None
        self._waiters: dict[str, dict[str, list[asyncio.Future]]] = {}  # batch id -> request id -> waiters
        self._adopted: dict[str, str] = {}   # request id -> batch id of an earlier session
        self._results: dict[str, dict[str, Any]] = {}  # request id -> answered line (late callers)
        self._tasks: set[asyncio.Task] = set()
        self._journal: Any = None
        if journal is not None:
            self.attach_journal(journal)

    def attach_journal(self, journal: Any) -> None:
        """Keep batch ids in `journal`; adopt the batches an earlier session submitted and did not collect."""
        self._journal = journal
        for batch_id in json.loads(journal.get_meta(PENDING_KEY) or "[]"):
            record = json.loads(journal.get_meta(f"batch:{batch_id}") or "{}")
            for request_id in record.get("ids", []):
                self._adopted[request_id] = batch_id

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._client.close()

    async def list_models(self) -> list[str]:
        return await list_model_ids(self._client)

    async def chat(self, messages: list[Message], params: SamplingParams, *,
                   tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> ChatResult:
        started = time.perf_counter()
        body = request_body(self.model, messages, params, tools, self.extra_body)
        request_id = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:40]
        attempts = 0

        async def attempt() -> ChatResult:
            nonlocal attempts
            attempts += 1
            try:
                return to_chat_result(await self._answer(request_id, body), self.model, messages)
            except LLMError as exc:
                self.attempt_errors[exc.kind] += 1
                raise

        result = await with_retries(self.retry, attempt)
        result.latency_s, result.requests = time.perf_counter() - started, attempts
        return result

    # --- queueing ----------------------------------------------------------------------
    async def _answer(self, request_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The reply body of `request_id`: from a collected line, an adopted batch, or a new batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        if request_id in self._results:
            return _reply_of(self._results.pop(request_id))
        batch_id = self._adopted.pop(request_id, None)
        if batch_id is not None:
            self._wait_on(batch_id, request_id, future)
        elif request_id in self._pending:
            self._pending[request_id][1].append(future)
        else:
            line = json.dumps({"custom_id": request_id, "method": "POST", "url": "/v1/chat/completions",
                               "body": body}, separators=(",", ":")).encode() + b"\n"
            self._pending[request_id] = (line, [future])
            self._pending_bytes += len(line)
            if len(self._pending) >= self.max_requests or self._pending_bytes >= self.max_bytes:
                self._spawn(self._submit(self._take()))
            elif self._flusher is None or self._flusher.done():
                self._flusher = self._spawn(self._flush_later())
        return _reply_of(await future)

    def _wait_on(self, batch_id: str, request_id: str, future: asyncio.Future) -> None:
        fresh = batch_id not in self._waiters
        self._waiters.setdefault(batch_id, {}).setdefault(request_id, []).append(future)
        if fresh:
            self.batches_resumed += 1
            self._spawn(self._poll(batch_id))

    def _take(self) -> dict[str, tuple[bytes, list[asyncio.Future]]]:
        taken, self._pending, self._pending_bytes = self._pending, {}, 0
        return taken

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_s)
        if self._pending:
            await self._submit(self._take())

    def _spawn(self, coro: Any) -> asyncio.Task:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- one batch -----------------------------------------------------------------------
    async def _submit(self, requests: dict[str, tuple[bytes, list[asyncio.Future]]]) -> None:
        try:
            upload = await self._client.files.create(file=("batch.jsonl", b"".join(v[0] for v in requests.values())),
                                                     purpose="batch")
            batch = await self._client.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions",
                                                      completion_window="24h")
        except Exception as exc:  # noqa: BLE001 - every waiter gets the mapped error (retried by its policy)
            _fail_all([f for _, futures in requests.values() for f in futures], map_error(exc))
            return
        self.batches_submitted += 1
        self._waiters[batch.id] = {rid: futures for rid, (_, futures) in requests.items()}
        await self._record(batch.id, upload.id, list(requests))
        await self._poll(batch.id)

    async def _record(self, batch_id: str, file_id: str, request_ids: list[str]) -> None:
        if self._journal is None:
            return
        self._journal.set_meta(f"batch:{batch_id}", json.dumps({"file": file_id, "ids": request_ids}))
        pending = json.loads(self._journal.get_meta(PENDING_KEY) or "[]")
        self._journal.set_meta(PENDING_KEY, json.dumps(sorted(set(pending) | {batch_id})))
        durable = getattr(self._journal, "durable", None)
        if durable is not None:
            await durable()

    async def _poll(self, batch_id: str) -> None:
        try:
            while True:
                batch = await self._client.batches.retrieve(batch_id)
                if batch.status in TERMINAL:
                    break
                await asyncio.sleep(self.poll_s)
            lines = {}
            for file_id in (batch.output_file_id, batch.error_file_id):
                if file_id:
                    text = (await self._client.files.content(file_id)).text
                    lines.update((row["custom_id"], row) for row in map(json.loads, text.splitlines()) if row)
        except Exception as exc:  # noqa: BLE001 - the waiters retry (a later poll of a new batch)
            waiters = self._waiters.pop(batch_id, {})
            for request_id in waiters:
                self._adopted.setdefault(request_id, batch_id)  # the batch may still be collected next time
            _fail_all([f for futures in waiters.values() for f in futures], map_error(exc))
            return
        waiters = self._waiters.pop(batch_id, {})
        missing = LLMError("timeout", f"batch {batch_id} ended {batch.status} before answering this request",
                           retryable=True)
        for request_id, row in lines.items():
            if request_id in waiters:
                for future in waiters.pop(request_id):
                    if not future.done():
                        future.set_result(row)
            elif _status(row) == 200:
                self._results[request_id] = row  # for a caller that asks for it later in this session
        _fail_all([f for futures in waiters.values() for f in futures], missing)
        self._forget(batch_id)

    def _forget(self, batch_id: str) -> None:
        for request_id in [r for r, b in self._adopted.items() if b == batch_id]:
            del self._adopted[request_id]
        if self._journal is not None:
            pending = json.loads(self._journal.get_meta(PENDING_KEY) or "[]")
            self._journal.set_meta(PENDING_KEY, json.dumps([b for b in pending if b != batch_id]))


def _status(row: dict[str, Any]) -> int | None:
    response = row.get("response")
    return response.get("status_code") if isinstance(response, dict) else None


def _reply_of(row: dict[str, Any]) -> dict[str, Any]:
    """The chat completion of an output line, or the LLMError its failure maps to."""
    status = _status(row)
    if status == 200:
        return row["response"].get("body") or {}
    error = row.get("error") or ((row.get("response") or {}).get("body") or {}).get("error") or {}
    message = f"batch line failed ({status or error.get('code')}): {error.get('message', '')}"[:500]
    if status is None or status == 429 or status >= 500:
        raise LLMError("rate_limit" if status == 429 else "server_error", message, status=status, retryable=True)
    raise LLMError("bad_request", message, status=status)


def _fail_all(futures: list[asyncio.Future], exc: LLMError) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)
