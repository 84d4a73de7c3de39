"""The `openai` backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM serve, SGLang, Ollama...).

What it is for: one HTTP request per `chat` call through the official `openai` SDK (`AsyncOpenAI`,
its own retries off), with our tenacity policy, bounded concurrency (a semaphore held only while a
request is on the wire, not while backing off), `n` passed through, usage read from the reply (or
estimated and marked so), and every failure mapped to an `LLMError` kind.
What it does not do: top up fewer choices than asked (`agents.llm.sampling`), price, cache or
budget (`agents.llm.metered`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import openai

from agents.llm.retry import RetryPolicy, parse_retry_after, with_retries
from agents.llm.tokens import estimate_prompt_tokens, estimate_tokens
from agents.llm.types import ChatResult, Choice, LLMError, Message, SamplingParams, Usage

_FAIL_FAST = {400: "bad_request", 401: "auth", 403: "auth", 404: "not_found", 422: "bad_request"}


class OpenAIBackend:
    """Chat completions against an OpenAI-compatible server."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, concurrency: int = 64, retry: RetryPolicy | None = None,
                 supports_n: bool = True, extra_body: dict[str, Any] | None = None) -> None:
        self.model = model
        self.supports_n = supports_n
        self.retry = retry or RetryPolicy()
        self.extra_body = extra_body or {}
        self._limit = asyncio.Semaphore(concurrency)
        self.attempt_errors: Counter[str] = Counter()  # failed attempts by kind (retried or not)
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "EMPTY",
                                          timeout=timeout_s, max_retries=0)

    async def aclose(self) -> None:
        await self._client.close()

    async def chat(self, messages: list[Message], params: SamplingParams, *,
                   tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> ChatResult:
        started = time.perf_counter()
        attempts = 0

        async def attempt() -> ChatResult:
            nonlocal attempts
            attempts += 1
            try:
                async with self._limit:
                    raw = await self._send(messages, params, tools)
                return to_chat_result(raw, self.model, messages)
            except LLMError as exc:
                self.attempt_errors[exc.kind] += 1
                raise

        result = await with_retries(self.retry, attempt)
        return result.model_copy(update={"latency_s": time.perf_counter() - started, "requests": attempts})

    async def list_models(self) -> list[str]:
        """Model ids the server offers (used as a reachability check before a job starts)."""
        try:
            page = await self._client.models.list()
        except Exception as exc:  # noqa: BLE001 - mapped to our kinds
            raise map_error(exc) from exc
        return [m.id for m in page.data]

    async def _send(self, messages: list[Message], params: SamplingParams,
                    tools: list[dict[str, Any]] | None) -> Any:
        kwargs: dict[str, Any] = {
            "model": self.model, "messages": messages, "max_tokens": params.max_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "n": params.n,
        }
        if params.stop:
            kwargs["stop"] = params.stop
        if params.seed is not None:
            kwargs["seed"] = params.seed
        if tools:
            kwargs["tools"] = tools
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        try:
            return await self._client.chat.completions.create(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every transport failure becomes an LLMError
            raise map_error(exc) from exc


def map_error(exc: BaseException) -> LLMError:
    """Map an `openai` SDK exception to an `LLMError` with kind, retryability and server hint."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, openai.APITimeoutError):
        return LLMError("timeout", "request timed out", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        return LLMError("connection", f"connection failed: {exc.__cause__ or exc}", retryable=True)
    if isinstance(exc, openai.APIResponseValidationError):
        return LLMError("malformed_reply", "reply is not a valid chat completion", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        return _status_error(exc)
    if isinstance(exc, (ValueError, KeyError, TypeError)):  # unparseable body (bad JSON, wrong shape)
        return LLMError("malformed_reply", f"reply could not be parsed: {exc}", retryable=True)
    return LLMError("unknown", repr(exc))


def _status_error(exc: openai.APIStatusError) -> LLMError:
    status = exc.status_code
    detail = _server_message(exc)
    if status in _FAIL_FAST:
        return LLMError(_FAIL_FAST[status], f"HTTP {status}: {detail}", status=status)
    if status == 429:
        hint = parse_retry_after(dict(exc.response.headers))
        return LLMError("rate_limit", f"HTTP 429: {detail}", status=status, retryable=True, retry_after=hint)
    if status >= 500 or status in (408, 409):
        return LLMError("server_error", f"HTTP {status}: {detail}", status=status, retryable=True,
                        retry_after=parse_retry_after(dict(exc.response.headers)))
    return LLMError("bad_request", f"HTTP {status}: {detail}", status=status)


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:500]
    return str(exc.message)[:500]


def to_chat_result(raw: Any, model: str, messages: list[Message]) -> ChatResult:
    """Validate an SDK completion into a ChatResult; a reply without usable choices is malformed."""
    raw_choices = getattr(raw, "choices", None)
    if not isinstance(raw_choices, list) or not raw_choices:
        raise LLMError("malformed_reply", "reply has no choices", retryable=True)
    choices = [_to_choice(c, i) for i, c in enumerate(raw_choices)]
    usage = _usage(getattr(raw, "usage", None), messages, choices)
    return ChatResult(model=getattr(raw, "model", None) or model, choices=choices, usage=usage)


def _to_choice(raw: Any, position: int) -> Choice:
    message = getattr(raw, "message", None)
    if message is None or not hasattr(message, "model_dump"):
        raise LLMError("malformed_reply", f"choice {position} has no message", retryable=True)
    data = message.model_dump(exclude_none=True, mode="json")
    data.setdefault("role", "assistant")
    if not isinstance(data.get("content", ""), str):
        raise LLMError("malformed_reply", f"choice {position} content is not text", retryable=True)
    index = getattr(raw, "index", None)
    return Choice(index=index if isinstance(index, int) else position, message=data,
                  finish_reason=getattr(raw, "finish_reason", None))


def _usage(raw: Any, messages: list[Message], choices: list[Choice]) -> Usage:
    prompt = getattr(raw, "prompt_tokens", None)
    completion = getattr(raw, "completion_tokens", None)
    if isinstance(prompt, int) and isinstance(completion, int):
        details = getattr(raw, "prompt_tokens_details", None)
        cached = getattr(details, "cached_tokens", None) or 0
        return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_prompt_tokens=int(cached))
    completion_estimate = sum(estimate_tokens(c.text) + _tool_call_tokens(c) for c in choices)
    return Usage(prompt_tokens=estimate_prompt_tokens(messages), completion_tokens=completion_estimate,
                 estimated=True)


def _tool_call_tokens(choice: Choice) -> int:
    calls = choice.message.get("tool_calls")
    return estimate_tokens(json.dumps(calls)) if calls else 0
