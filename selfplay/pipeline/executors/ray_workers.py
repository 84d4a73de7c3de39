"""What runs inside Ray worker processes: the endpoint worker actor and the generic check task.

What it is for:
- `EndpointWorker`, an async Ray actor holding one `openai` backend (the `openai` SDK client with our
  retries and error kinds) per (model, endpoint) it was asked to talk to, built by the job's LLM factory
  (`selfplay.pipeline.llm.build_backend`) from the section sent as plain data (`section_spec`). `chat` sends one request
  and returns the reply as plain data, or the final `LLMError` as data (kind, message, status):
  exceptions never cross the process boundary as pickled objects. Many requests are in flight per
  actor at once (one event loop, many coroutines).
- `call(fn, args, kwargs)`, the body of every verification / tool Ray task: a check is a plain,
  picklable function (`selfplay.pipeline.verify.check_code`, `verifiers.code.run_python`, ...) and its
  verdict is plain data.
What it does NOT do: price, reserve, cache or store anything. Those stay with the driver, which owns
the run store and the budget ledger; a worker only talks HTTP and executes checks.
"""

from __future__ import annotations

import json
import os
from typing import Any

from agents.llm.types import LLMError, SamplingParams
from selfplay.pipeline.llm import build_backend, section_from_spec


def error_as_data(exc: LLMError) -> dict[str, Any]:
    return {"kind": exc.kind, "message": exc.message, "status": exc.status, "retryable": exc.retryable}


class EndpointWorker:
    """HTTP clients to one or more OpenAI-compatible endpoints (wrapped by `ray.remote` at start-up)."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}

    def _client(self, spec: dict[str, Any], url: str) -> Any:
        """The `openai` backend of section `spec` (`selfplay.pipeline.llm.section_spec`) at `url`, built once."""
        key = json.dumps([spec, url], sort_keys=True)
        if key not in self._clients:
            self._clients[key] = build_backend(*section_from_spec(spec, url))
        return self._clients[key]

    async def chat(self, spec: dict[str, Any], url: str, messages: list[dict[str, Any]], params: dict[str, Any],
                   tools: list[dict[str, Any]] | None, sample_offset: int) -> dict[str, Any]:
        try:
            result = await self._client(spec, url).chat(messages, SamplingParams.model_validate(params), tools=tools,
                                                        sample_offset=sample_offset)
        except LLMError as exc:
            return {"error": error_as_data(exc)}
        return {"result": result.model_dump(mode="json")}

    async def list_models(self, spec: dict[str, Any], url: str) -> dict[str, Any]:
        try:
            return {"result": await self._client(spec, url).list_models()}
        except LLMError as exc:
            return {"error": error_as_data(exc)}

    def attempt_errors(self, name: str) -> dict[str, int]:
        """Failed attempts (retried or not) by kind, of the clients of model `name` since this actor started."""
        totals: dict[str, int] = {}
        for client in self._clients.values():
            if client.model == name:
                for kind, count in client.attempt_errors.items():
                    totals[kind] = totals.get(kind, 0) + count
        return totals

    def pid(self) -> int:
        return os.getpid()

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def call(fn: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    """Run one check (or tool run) in a Ray worker process."""
    return fn(*args, **kwargs)
