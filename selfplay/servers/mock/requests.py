"""Parsing of the mock's OpenAI requests: the body, the parameters it honours, and the request's identity key.

What it is for: the pieces the HTTP handler (`app`) and the Batch API (`batches`) share: `parse_body`,
`chat_params` / `completion_params` (each refusal a `BadRequest` with OpenAI's error kind), `request_key`.
What it does not do: answer requests (see `app`), or apply faults.
"""

from __future__ import annotations

import hashlib
import json

from selfplay.core.errors import RequestRefused
from selfplay.servers.mock.matching import canonical_json


class BadRequest(RequestRefused):
    """A request the mock refuses: answered with `status` and OpenAI's error `kind` (selfplay.core.errors)."""

    def __init__(self, kind: str, message: str, status: int = 400, param: str | None = None):
        super().__init__(message)
        self.kind, self.message, self.status, self.param = kind, message, status, param



def request_key(endpoint: str, body: dict) -> str:
    """Identity of "the same request": SHA-256 of the endpoint and the canonical JSON body (24 hex chars)."""
    text = f"{endpoint}\n{canonical_json(body)}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def parse_body(raw: bytes) -> dict:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("bad_request", "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("bad_request", "request body must be a JSON object")
    return body


def common_params(body: dict) -> dict:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("bad_request", "`model` is required (a string)")
    n = 1 if body.get("n") is None else body["n"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise BadRequest("bad_request", f"`n` must be an integer >= 1, got {n!r}")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool)
                                   or max_tokens < 0):
        raise BadRequest("bad_request", f"`max_tokens` must be a non-negative integer, got {max_tokens!r}")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise BadRequest("bad_request", "`stop` must be a string or a list of strings")
    return {"model": model, "n": n, "max_tokens": max_tokens, "stop": stop, "seed": body.get("seed")}


def chat_params(body: dict) -> dict:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise BadRequest("bad_request", "`messages` must be a non-empty list of {role, content} objects")
    return {**common_params(body), "messages": messages, "tools": body.get("tools")}


def completion_params(body: dict) -> dict:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise BadRequest("bad_request", "`prompt` must be a string or a non-empty list of strings "
                                        "(token-id prompts are not supported)")
    return {**common_params(body), "prompts": prompts}
