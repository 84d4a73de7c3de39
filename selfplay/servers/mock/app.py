"""The mock OpenAI-compatible HTTP app: /v1/chat/completions, /v1/completions, /v1/models, /mock/*.

What it is for: answering OpenAI-shaped requests from a script (see `script`, `matching`, `tokens`), with
correct `usage`, `n` choices, `stop` / `max_tokens`, optional fixed latency and deterministic faults
(see `faults`). Requests are parsed by hand from JSON (no pydantic) to keep the handler lean.
Fault responses: "429" -> status 429 with `retry-after` (seconds, may be fractional) and `retry-after-ms`;
"500" -> 500, 502 or 503 with an OpenAI-shaped error body; "timeout" -> the request is held open for
`hang_s` seconds (or until the client goes away or the server stops) and then answered 504; "malformed"
-> HTTP 200 whose body is invalid JSON or JSON without `choices`; "truncate" -> HTTP 200 headers with a
content-length larger than the bytes sent, then the connection is closed (httpx: RemoteProtocolError).
`stream: true` is answered with server-sent events built from the same body (`selfplay.servers.sse`;
usage in a last chunk when `stream_options.include_usage` is set); faults are the same as without it.
What it does NOT do: token-by-token streaming, embeddings, logprobs, or run a server (see `server`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from selfplay.core.errors import SelfplayError
from selfplay.servers.mock.batches import add_batch_routes
from selfplay.servers.mock.requests import (BadRequest, chat_params, completion_params, parse_body,
                                            request_key)
from selfplay.servers.mock.faults import Fault, FaultPlanner, FaultRates
from selfplay.servers.mock.matching import (chat_conversation, choose_reply, find_rule,
                                    prompt_conversation, render_reply, selection_key, text_of)
from selfplay.servers.mock.script import Script
from selfplay.servers.sse import sse_bytes, wants_usage
from selfplay.servers.mock.stats import Stats
from selfplay.servers.mock.templates import TemplateError
from selfplay.servers.mock.tokens import (chat_prompt_tokens, completion_tokens, count_tokens, finish_choice,
                                  usage_block)

CREATED = 1_700_000_000  # a fixed `created` so that identical requests get byte-identical replies
KEY_HEADER = "x-mock-request-key"


@dataclass
class MockConfig:
    script: Script
    seed: int = 0
    latency_ms: float = 0.0
    faults: FaultRates = field(default_factory=FaultRates)
    hang_s: float = 30.0
    max_n: int | None = None
    usage: bool = True
    retry_after_s: float = 0.02
    max_consecutive_faults: int = 3
    batch_latency_s: float = 0.0      # a batch is in_progress this long, then processed (see `batches`)
    batch_outcome: str = "completed"  # or "expired" (half the lines answered) or "failed"


class DroppedConnection(SelfplayError):
    """Raised after a deliberately partial body so that uvicorn closes the connection."""


class _IgnoreDroppedConnection(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


def quiet_dropped_connections() -> None:
    """Keep uvicorn from logging a traceback for each injected `truncate` fault."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _IgnoreDroppedConnection) for f in logger.filters):
        logger.addFilter(_IgnoreDroppedConnection())


class TruncatedResponse(Response):
    """Headers promising `len(body)` bytes, half of them, then a dropped connection."""

    def __init__(self, body: bytes):
        super().__init__(content=body, media_type="application/json")
        self.full = body

    async def __call__(self, scope, receive, send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(self.full)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.full[: len(self.full) // 2], "more_body": True})
        raise DroppedConnection()


def json_response(payload: Any, status: int = 200, headers: dict | None = None) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return Response(content=body, status_code=status, media_type="application/json", headers=headers)


def _dumps(payload: Any) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def error_response(status: int, message: str, kind: str, code: str | None = None,
                   headers: dict | None = None, param: str | None = None) -> Response:
    return json_response({"error": {"message": message, "type": kind, "param": param, "code": code}},
                         status, headers)


def n_refusal(max_n: int, n: int) -> str:
    """OpenAI's own 400 message for `n` above its cap (`agents.llm.ncap` reads the cap back out of it)."""
    return f"Invalid 'n': integer above maximum value. Expected a value <= {max_n}, but got {n} instead."


class MockState:
    """Everything one server instance holds: config, stats, fault planner, and the stop signal for hangs."""

    def __init__(self, config: MockConfig):
        self.config = config
        self.stats = Stats()
        self.planner = FaultPlanner(config.faults, config.seed, config.max_consecutive_faults)
        self._closing: asyncio.Event | None = None

    def reset(self) -> None:
        self.stats.reset()
        self.planner.reset()

    def release_hangs(self) -> None:
        """Answer every held 'timeout' request now (call from the server's loop, e.g. before shutdown)."""
        self._closing_event().set()

    def _closing_event(self) -> asyncio.Event:
        if self._closing is None:
            self._closing = asyncio.Event()
        return self._closing

    async def handle(self, request: Request, endpoint: str) -> Response:
        self.stats.request(endpoint)
        self.stats.enter()
        try:
            return await self._handle(request, endpoint)
        except BadRequest as exc:
            self.stats.error(exc.kind)
            return error_response(exc.status, exc.message, "invalid_request_error", exc.kind, param=exc.param)
        finally:
            self.stats.leave()

    async def _handle(self, request: Request, endpoint: str) -> Response:
        body = parse_body(await request.body())
        params = chat_params(body) if endpoint == "chat.completions" else completion_params(body)
        if self.config.max_n is not None and params["n"] > self.config.max_n:
            raise BadRequest("n_too_large", n_refusal(self.config.max_n, params["n"]), param="n")
        key = request_key(endpoint, body)
        fault = self.planner.decide(key)
        if fault is not None and fault.kind == "timeout":
            self.stats.fault(fault.kind)
            await self._hang(request)
            return error_response(504, "mock: request held open past its deadline (injected timeout)",
                                  "timeout", "timeout")
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000.0)
        if fault is not None:
            self.stats.fault(fault.kind)
            return self._fault_response(fault, endpoint, key)
        payload, rule_names, choices, usage = self._completion(endpoint, params, key)
        self.stats.success(key, rule_names, choices, usage["prompt_tokens"], usage["completion_tokens"])
        if body.get("stream"):
            events = sse_bytes(payload, self.config.usage and wants_usage(body), _dumps)
            return StreamingResponse(events, media_type="text/event-stream", headers={KEY_HEADER: key})
        return json_response(payload, headers={KEY_HEADER: key})

    async def _hang(self, request: Request) -> None:
        waiters = [asyncio.ensure_future(_wait_for_disconnect(request)),
                   asyncio.ensure_future(self._closing_event().wait())]
        try:
            await asyncio.wait(waiters, timeout=self.config.hang_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _fault_response(self, fault: Fault, endpoint: str, key: str) -> Response:
        if fault.kind == "429":
            seconds = self.config.retry_after_s
            headers = {"retry-after": f"{seconds:g}", "retry-after-ms": str(int(round(seconds * 1000)))}
            return error_response(429, "mock: rate limit reached (injected fault)", "rate_limit_error",
                                  "rate_limit_exceeded", headers)
        if fault.kind == "500":
            return error_response(int(fault.variant), "mock: server error (injected fault)", "server_error")
        stub = {"id": f"mock-{key}", "object": _object_name(endpoint), "created": CREATED, "model": "mock"}
        if fault.kind == "malformed" and fault.variant == "missing_choices":
            return json_response(stub)
        if fault.kind == "malformed":
            return Response(content=b'{"id": "mock-' + key.encode() + b'", "choices": [{"ind',
                            media_type="application/json")
        return TruncatedResponse(json.dumps({**stub, "choices": [], "padding": "x" * 64}).encode())

    def _completion(self, endpoint: str, params: dict, key: str) -> tuple[dict, list[str], int, dict]:
        model = params["model"]
        if endpoint == "chat.completions":
            prompts = [(params["messages"], chat_conversation(params["messages"], model))]
            prompt_tokens = chat_prompt_tokens(params["messages"], params["tools"], text_of)
        else:
            prompts = [(p, prompt_conversation(p, model)) for p in params["prompts"]]
            prompt_tokens = sum(count_tokens(p) for p in params["prompts"])
        choices, rule_names, used = [], [], 0
        for prompt, conv in prompts:
            found = find_rule(self.config.script, conv)
            if found is None:
                raise BadRequest("no_rule_matched", f"mock: no script rule matched the last user message "
                                                    f"{conv.last_user[:200]!r} and the script has no [default]")
            rule, groups = found
            rule_names.append(rule.name)
            sel = selection_key(self.config.seed, params["seed"], model, prompt)
            for i in range(params["n"]):
                choice, tokens = self._choice(endpoint, rule, groups, sel, i, params, len(choices))
                choices.append(choice)
                used += tokens
        payload = {"id": f"{'chatcmpl' if endpoint == 'chat.completions' else 'cmpl'}-{key}",
                   "object": _object_name(endpoint), "created": CREATED, "model": model,
                   "system_fingerprint": "selfplay-mock", "choices": choices}
        usage = usage_block(prompt_tokens, used)
        if self.config.usage:
            payload["usage"] = usage
        return payload, rule_names, len(choices), usage

    def _choice(self, endpoint, rule, groups, sel, i, params, index) -> tuple[dict, int]:
        reply = choose_reply(rule, i, sel)
        try:
            content, calls = render_reply(reply, groups, sel, i)
        except TemplateError as exc:
            raise BadRequest("script_error", f"mock script rule {rule.name!r}: {exc}") from None
        if endpoint != "chat.completions":
            content, calls = content or "", []
        content, calls, finish = finish_choice(content, calls, params["stop"], params["max_tokens"],
                                               reply.finish_reason)
        tokens = completion_tokens(content, calls)
        if endpoint != "chat.completions":
            return {"text": content, "index": index, "logprobs": None, "finish_reason": finish}, tokens
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        return {"index": index, "message": message, "logprobs": None, "finish_reason": finish}, tokens


async def _wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _object_name(endpoint: str) -> str:
    return "chat.completion" if endpoint == "chat.completions" else "text_completion"


def build_app(config: MockConfig) -> FastAPI:
    """The FastAPI app for one server; `app.state.mock` is its MockState."""
    app = FastAPI(title="selfplay mock OpenAI server", docs_url=None, redoc_url=None, openapi_url=None)
    state = MockState(config)
    app.state.mock = state

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await state.handle(request, "chat.completions")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await state.handle(request, "completions")

    @app.get("/v1/models")
    async def models() -> Response:
        state.stats.request("models")
        data = [{"id": m, "object": "model", "created": CREATED, "owned_by": "selfplay-mock"}
                for m in config.script.models]
        return json_response({"object": "list", "data": data})

    batches = add_batch_routes(app, state, json_response, error_response)

    @app.get("/mock/stats")
    async def stats() -> Response:
        return json_response({**state.stats.snapshot(), "batches": batches.created, "batch_lines": batches.lines})

    @app.post("/mock/reset")
    async def reset() -> Response:
        state.reset()
        return json_response({"ok": True})

    @app.get("/mock/health")
    async def health() -> Response:
        return json_response({"ok": True})

    return app
