"""The `openai` backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM serve, SGLang, Ollama...).

What it is for: one HTTP request per `chat` call through the official `openai` SDK's client
(`AsyncOpenAI`: its transport, auth, base URL, timeouts and error classes; its own retries off),
with our tenacity policy, bounded concurrency (a semaphore held only while a request is on the wire,
not while backing off), `n` passed through, usage read from the reply (or estimated and marked so),
and every failure mapped to an `LLMError` kind. The request body is posted as built and the reply
read as plain JSON, straight into our own `ChatResult`: the SDK's typed path (its request transform
and response models) costs about a millisecond of CPU per request, which at hundreds of requests in
flight is most of what this process spends per request.
Sampled token ids and log-probs, when the server sends them, are kept on each `Choice` (optional): vLLM sends
`choices[i].token_ids` when the request carries `return_token_ids: true`, and OpenAI and vLLM send
`choices[i].logprobs.content[j].logprob` for `logprobs: true`; ask for them with
`[model] extra_body = { return_token_ids = true, logprobs = true }` (OpenAI itself refuses `return_token_ids`).
By default (`sampled_tokens=None`) the backend asks for both by itself when the server is vLLM: `list_models`
sees `owned_by: "vllm"`, or else, before the first request, one `GET /version` at the server's root answers
`{"version": ...}` as vLLM's does (so does `selfplay serve`, which answers both the same way; any HTTP error
status: not vLLM; a connection failure is retried as the request would be). `sampled_tokens=True` always asks, `False` never; `extra_body` keys still win.
Log-probs whose count differs from the token ids are dropped (they could not be aligned).
With `stream=True` (for servers that only stream) the request is sent with `stream: true` and the chunks
are folded back into one reply (`agents.llm.openai_stream`).
`max_n` is the most choices one request may ask for (`agents.llm.sampling` chunks K by it and lowers it when
the server's 400 states a smaller cap): None means the provider's known default (`agents.llm.ncap`:
OpenAI's API 128, any other endpoint no known cap). A 400's `param` (e.g. "n") is kept on the `LLMError`.
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

from agents.llm.ncap import default_max_n
from agents.llm.openai_stream import post_streamed
from agents.llm.retry import RetryPolicy, parse_retry_after, with_retries
from agents.llm.tokens import estimate_prompt_tokens, estimate_tokens
from agents.llm.types import ChatResult, Choice, LLMError, Message, SamplingParams, Usage

_FAIL_FAST = {400: "bad_request", 401: "auth", 403: "auth", 404: "not_found", 422: "bad_request"}
# What vLLM needs to send each choice's sampled ids (`choices[i].token_ids`) and their log-probs.
SAMPLED_TOKENS_BODY: dict[str, Any] = {"return_token_ids": True, "logprobs": True}
# `/v1/models` owners that answer SAMPLED_TOKENS_BODY the vLLM way.
SAMPLED_TOKEN_SERVERS = ("vllm",)


class OpenAIBackend:
    """Chat completions against an OpenAI-compatible server."""

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0, concurrency: int = 64, retry: RetryPolicy | None = None,
                 supports_n: bool = True, extra_body: dict[str, Any] | None = None, stream: bool = False,
                 max_n: int | None = None, sampled_tokens: bool | None = None) -> None:
        if max_n is not None and (type(max_n) is not int or max_n < 1):
            raise ValueError(f"max_n must be a positive integer or None (the provider's default), got {max_n!r}")
        self.model = model
        self.sampled_tokens = sampled_tokens  # None: decided from /v1/models before the first request
        self._detect_lock = asyncio.Lock()
        self.stream = stream
        self.supports_n = supports_n
        self.retry = retry or RetryPolicy()
        self.extra_body = extra_body or {}
        self._limit = asyncio.Semaphore(concurrency)
        self.attempt_errors: Counter[str] = Counter()  # failed attempts by kind (retried or not)
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key or "EMPTY",
                                          timeout=timeout_s, max_retries=0)
        self.max_n = max_n if max_n is not None else default_max_n(str(self._client.base_url))

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
                if self.sampled_tokens is None:
                    await self._detect_server()
                async with self._limit:
                    raw = await self._send(messages, params, tools)
                return to_chat_result(raw, self.model, messages)
            except LLMError as exc:
                self.attempt_errors[exc.kind] += 1
                raise

        result = await with_retries(self.retry, attempt)  # a fresh result: set its timing in place
        result.latency_s, result.requests = time.perf_counter() - started, attempts
        return result

    async def list_models(self) -> list[str]:
        """Model ids the server offers (used as a reachability check before a job starts)."""
        entries = await list_model_entries(self._client)
        if self.sampled_tokens is None and is_vllm(entries):  # otherwise /version decides before the first request
            self.sampled_tokens = True
        return [entry["id"] for entry in entries]

    async def _detect_server(self) -> None:
        """Set `sampled_tokens` once, from the server's `/version` (transport errors propagate: retried)."""
        async with self._detect_lock:
            if self.sampled_tokens is None:
                self.sampled_tokens = await answers_version(self._client)

    def _extra_body(self) -> dict[str, Any]:
        if self.sampled_tokens:
            return {**SAMPLED_TOKENS_BODY, **self.extra_body}
        return self.extra_body

    async def _send(self, messages: list[Message], params: SamplingParams,
                    tools: list[dict[str, Any]] | None) -> Any:
        """POST /chat/completions; the reply's JSON as parsed (the SDK raises its errors for HTTP statuses)."""
        body = request_body(self.model, messages, params, tools, self._extra_body())
        try:
            if self.stream:
                return await post_streamed(self._client, body)
            return await self._client.post("/chat/completions", body=body, cast_to=object)
        except Exception as exc:  # noqa: BLE001 - every transport failure becomes an LLMError
            raise map_error(exc) from exc


async def list_model_ids(client: openai.AsyncOpenAI) -> list[str]:
    """The model ids an OpenAI-compatible server lists at `/v1/models`, errors mapped to our kinds."""
    return [entry["id"] for entry in await list_model_entries(client)]


async def list_model_entries(client: openai.AsyncOpenAI) -> list[dict[str, Any]]:
    """The `/v1/models` entries as plain JSON (id, owned_by, parent, ...), errors mapped to our kinds."""
    try:
        page = await client.get("/models", cast_to=object)
    except Exception as exc:  # noqa: BLE001 - mapped to our kinds
        raise map_error(exc) from exc
    data = page.get("data") if isinstance(page, dict) else None
    if not isinstance(data, list):
        raise LLMError("malformed_reply", "the /models reply has no data list", retryable=True)
    return [entry for entry in data if isinstance(entry, dict) and isinstance(entry.get("id"), str)]


async def answers_version(client: openai.AsyncOpenAI) -> bool:
    """Whether `GET /version` at the server's root answers as vLLM's does (`{"version": "0.32.0"}`)."""
    root = str(client.base_url).rstrip("/")
    root = root[:-3] if root.endswith("/v1") else root
    try:
        reply = await client.get(f"{root}/version", cast_to=object)
    except openai.APIStatusError:
        return False
    except Exception as exc:  # noqa: BLE001 - transport failures: retried like the request itself
        raise map_error(exc) from exc
    return isinstance(reply, dict) and isinstance(reply.get("version"), str) and set(reply) == {"version"}


def is_vllm(entries: list[dict[str, Any]]) -> bool:
    """Whether a `/v1/models` listing comes from vLLM (it sets `owned_by: "vllm"` on every model it serves)."""
    return any(entry.get("owned_by") in SAMPLED_TOKEN_SERVERS for entry in entries)


def request_body(model: str, messages: list[Message], params: SamplingParams, tools: list[dict[str, Any]] | None,
                 extra_body: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON body of a chat completion request; `extra_body` keys are merged in last (as the SDK does)."""
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": params.max_tokens,
                            "temperature": params.temperature, "top_p": params.top_p, "n": params.n}
    if params.stop:
        body["stop"] = params.stop
    if params.seed is not None:
        body["seed"] = params.seed
    if tools:
        body["tools"] = tools
    if extra_body:
        body.update(extra_body)
    return body


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
        return LLMError(_FAIL_FAST[status], f"HTTP {status}: {detail}", status=status, param=_server_param(exc))
    if status == 429:
        hint = parse_retry_after(dict(exc.response.headers))
        return LLMError("rate_limit", f"HTTP 429: {detail}", status=status, retryable=True, retry_after=hint)
    if status >= 500 or status in (408, 409):
        return LLMError("server_error", f"HTTP {status}: {detail}", status=status, retryable=True,
                        retry_after=parse_retry_after(dict(exc.response.headers)))
    return LLMError("bad_request", f"HTTP {status}: {detail}", status=status)


def _server_param(exc: openai.APIStatusError) -> str | None:
    """The parameter an error body blames (`{"error": {"param": "n"}}`), when it names one."""
    body = exc.body
    inner = body.get("error", body) if isinstance(body, dict) else None
    param = inner.get("param") if isinstance(inner, dict) else None
    return param if isinstance(param, str) and param else None


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])[:500]
    return str(exc.message)[:500]


def to_chat_result(raw: Any, model: str, messages: list[Message]) -> ChatResult:
    """Validate a chat completion (the reply's JSON) into a ChatResult; a reply without usable choices is malformed."""
    raw_choices = raw.get("choices") if isinstance(raw, dict) else None
    if not isinstance(raw_choices, list) or not raw_choices:
        raise LLMError("malformed_reply", "reply has no choices", retryable=True)
    choices = [_to_choice(c, i) for i, c in enumerate(raw_choices)]
    usage = _usage(raw.get("usage"), messages, choices)
    return ChatResult(model=raw.get("model") or model, choices=choices, usage=usage)


def _to_choice(raw: Any, position: int) -> Choice:
    message = raw.get("message") if isinstance(raw, dict) else None
    if not isinstance(message, dict):
        raise LLMError("malformed_reply", f"choice {position} has no message", retryable=True)
    data = _without_none(message)
    data.setdefault("role", "assistant")
    if not isinstance(data.get("content", ""), str):
        raise LLMError("malformed_reply", f"choice {position} content is not text", retryable=True)
    index, finish = raw.get("index"), raw.get("finish_reason")
    token_ids, logprobs = _sampled_tokens(raw)
    return Choice(index=index if type(index) is int else position, message=data,
                  finish_reason=finish if isinstance(finish, str) else None, token_ids=token_ids, logprobs=logprobs)


def _sampled_tokens(raw: dict[str, Any]) -> tuple[list[int] | None, list[float] | None]:
    """vLLM's `token_ids` (with `return_token_ids`) and the `logprobs.content[].logprob` list, where well formed."""
    ids = raw.get("token_ids")
    if ids is None and raw.get("logprobs") is None:  # a server that sent neither: nothing to check
        return None, None
    token_ids = ids if isinstance(ids, list) and ids and all(type(t) is int for t in ids) else None
    content = raw.get("logprobs").get("content") if isinstance(raw.get("logprobs"), dict) else None
    logprobs = None
    if isinstance(content, list) and content and all(isinstance(c, dict) for c in content):
        values = [c.get("logprob") for c in content]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            logprobs = [float(v) for v in values]
    if logprobs is not None and token_ids is not None and len(logprobs) != len(token_ids):
        logprobs = None
    return token_ids, logprobs


def _without_none(value: Any) -> Any:
    """JSON with null members dropped, at every depth (a message keeps only what the server set)."""
    if isinstance(value, dict):  # strings and numbers are kept as they are, without a call each (a reply of 128
        return {key: item if item.__class__ in _LEAVES else _without_none(item)  # choices has 128 messages)
                for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [item if item.__class__ in _LEAVES else _without_none(item) for item in value]
    return value


_LEAVES = frozenset({str, int, float, bool})


def _usage(raw: Any, messages: list[Message], choices: list[Choice]) -> Usage:
    raw = raw if isinstance(raw, dict) else {}
    prompt, completion = raw.get("prompt_tokens"), raw.get("completion_tokens")
    if type(prompt) is int and type(completion) is int:
        details = raw.get("prompt_tokens_details")
        cached = (details.get("cached_tokens") if isinstance(details, dict) else None) or 0
        return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_prompt_tokens=int(cached))
    completion_estimate = sum(estimate_tokens(c.text) + _tool_call_tokens(c) for c in choices)
    return Usage(prompt_tokens=estimate_prompt_tokens(messages), completion_tokens=completion_estimate,
                 estimated=True)


def _tool_call_tokens(choice: Choice) -> int:
    calls = choice.message.get("tool_calls")
    return estimate_tokens(json.dumps(calls)) if calls else 0
