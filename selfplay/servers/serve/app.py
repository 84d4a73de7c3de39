"""The FastAPI app of `selfplay serve`: an OpenAI-compatible endpoint over any `LLM` (the local backend).

What it is for: pointing the `openai` backend, or any OpenAI client, at a checkpoint of your own.
Routes: `POST /v1/chat/completions` (n, usage, seed, stop, max_tokens / max_completion_tokens, temperature,
top_p, `stream` with `stream_options.include_usage`, vLLM's `logprobs: true` and `return_token_ids: true`), `POST /v1/completions` (one raw-text prompt, no chat
template; needs a backend with `complete(prompt, params)`, as the local backend has), `GET /v1/models`,
`GET /health`, `GET /version` (`{"version"}`, as vLLM answers: the `openai` backend reads it to ask for token
ids), and vLLM's runtime LoRA API: `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` /
`POST /v1/unload_lora_adapter {"lora_name"}` (always enabled; `selfplay.servers.serve.lora`), after which a request's
`model` may name a loaded adapter and `/v1/models` lists it. `tools` is refused with a 400 (tool calls are not parsed from the model's text). Concurrent requests reach the backend concurrently, where the local
backend batches them. Every failure is an error body shaped as vLLM's (`{"error": {"message", "type", "param",
"code"}}`, `type` the error class name as vLLM sends it, `code` the HTTP status): 400 for a bad body (the field is
named), 404 for an unknown model, 500 when generation itself failed (503 when it may succeed if retried).
What it does not do: token-by-token streaming (a stream is sent once the text is complete), authentication (bind to 127.0.0.1, the default, or put a proxy in front),
load models (`selfplay.cli.serve`), or run uvicorn (`selfplay.servers.serve.server`).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import ValidationError

from agents.llm.types import LLMError
from selfplay import __version__
from selfplay.servers.protocol import (ChatCompletionRequest, CompletionRequest, completion_body,
                                     describe_validation_errors, error_body, text_completion_body)
from selfplay.servers.serve.lora import AdapterError, LoraAdapters
from selfplay.servers.sse import sse_bytes, wants_usage

log = logging.getLogger("selfplay.servers.serve")
_STATUS_OF_KIND = {"bad_request": 400, "not_found": 404, "auth": 401, "rate_limit": 429, "timeout": 504}
# vLLM's error `type` per status (the name of the exception class its handlers answer with).
_VLLM_TYPE = {400: "BadRequestError", 401: "UnauthorizedError", 404: "NotFoundError", 429: "RateLimitError",
              500: "InternalServerError", 503: "ServiceUnavailableError", 504: "TimeoutError"}


def build_app(llm: Any) -> FastAPI:
    """An app serving `llm` under the model id `llm.model`."""
    app = FastAPI(title="selfplay serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.llm = llm
    adapters = LoraAdapters(llm) if hasattr(llm, "hf_model") and hasattr(llm, "reload") else None
    app.state.adapters = adapters
    started = int(time.time())

    def resolve(model: str) -> Any:
        """The backend that serves `model` (the base or a loaded adapter), or the 404 saying what is served."""
        found = adapters.backend_for(model) if adapters is not None else (llm if model == llm.model else None)
        if found is None:
            served = [llm.model] + ([name for name, _ in adapters.listing()] if adapters is not None else [])
            return _unknown_model(model, ", ".join(repr(s) for s in served))
        return found

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": llm.model}

    @app.get("/version")
    async def version() -> dict[str, Any]:
        return {"version": __version__}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [{"id": llm.model, "object": "model", "created": started, "owned_by": "selfplay",
                 "root": llm.model, "parent": None}]
        for name, path in adapters.listing() if adapters is not None else []:
            data.append({"id": name, "object": "model", "created": started, "owned_by": "selfplay",
                         "root": path, "parent": llm.model})
        return {"object": "list", "data": data}

    @app.post("/v1/load_lora_adapter")
    async def load_lora_adapter(request: Request) -> Any:
        return await _adapter_op(request, adapters, "load")

    @app.post("/v1/unload_lora_adapter")
    async def unload_lora_adapter(request: Request) -> Any:
        return await _adapter_op(request, adapters, "unload")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Any:
        parsed = await _parse(request, ChatCompletionRequest)
        if isinstance(parsed, JSONResponse):
            return parsed
        backend = resolve(parsed.model)
        if isinstance(backend, JSONResponse):
            return backend
        messages = parsed.plain_messages()
        try:
            result = await backend.chat(messages, parsed.sampling_params())
        except LLMError as exc:
            return _llm_error(exc)
        tokens = backend if hasattr(backend, "encode") else llm  # an adapter's view shares the base's tokenizer
        prompt_ids = tokens.encode(messages) if parsed.return_token_ids and hasattr(tokens, "encode") else None
        body = completion_body(result, parsed.model, logprobs=bool(parsed.logprobs),
                               token_ids=bool(parsed.return_token_ids),
                               prompt_token_ids=prompt_ids, decode=getattr(tokens, "decode", None))
        return _answer(body, parsed)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Any:
        parsed = await _parse(request, CompletionRequest)
        if isinstance(parsed, JSONResponse):
            return parsed
        backend = resolve(parsed.model)
        if isinstance(backend, JSONResponse):
            return backend
        if not hasattr(backend, "complete"):
            return _error(404, "this backend serves chat only: use /v1/chat/completions")
        try:
            result = await backend.complete(parsed.prompt, parsed.sampling_params())
        except LLMError as exc:
            return _llm_error(exc)
        return _answer(text_completion_body(result, parsed.model), parsed)

    return app


async def _adapter_op(request: Request, adapters: LoraAdapters | None, op: str) -> Any:
    """vLLM's answers: 200 with a plain-text success line, or an error body with 400 / 404."""
    if adapters is None:
        return _error(404, "this backend has no in-process model to load LoRA adapters on")
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"request body is not valid JSON: {exc}")
    try:
        message = await (adapters.load(body) if op == "load" else adapters.unload(body))
    except AdapterError as exc:
        log.warning("%s_lora_adapter refused: %s", op, exc.message)
        duplicate = "has already been loaded" in exc.message  # vLLM answers this one as InvalidUserInput
        return _error(exc.status, exc.message, kind="InvalidUserInput" if duplicate else None)
    log.info("%s", message)
    return PlainTextResponse(message)


def _answer(body: dict[str, Any], parsed: Any) -> Any:
    if not parsed.stream:
        return JSONResponse(body)
    usage = wants_usage(parsed.model_extra or {})
    return StreamingResponse(sse_bytes(body, usage, json.dumps), media_type="text/event-stream")


def _unknown_model(asked: str, served: str) -> JSONResponse:
    return _error(404, f"The model `{asked}` does not exist; this server serves {served}", param="model")


async def _parse(request: Request, model: Any) -> Any:
    """The validated body, or the 400 that says what is wrong with it."""
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return _error(400, f"request body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return _error(400, "request body must be a JSON object")
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        message, param = describe_validation_errors(exc.errors())
        return _error(400, message, param=param)
    refused = parsed.unsupported()
    if refused:
        why = (": tool calls are not parsed from the model's text; describe the tools in the prompt instead"
               if refused == "tools" else "")
        return _error(400, f"{refused!r} is not supported by selfplay serve{why}", param=refused)
    return parsed


def _llm_error(exc: LLMError) -> JSONResponse:
    status = _STATUS_OF_KIND.get(exc.kind, 503 if exc.retryable else 500)
    if status >= 500:
        log.error("generation failed: %s", exc)
    return _error(status, exc.message)


def _error(status: int, message: str, *, param: str | None = None, kind: str | None = None) -> JSONResponse:
    """vLLM's error body: `type` the error class name for the status (or `kind`), `code` the status itself."""
    kind = kind or _VLLM_TYPE.get(status, "BadRequestError" if status < 500 else "InternalServerError")
    return JSONResponse(error_body(message, kind=kind, param=param, code=status), status_code=status)
