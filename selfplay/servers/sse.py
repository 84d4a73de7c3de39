"""Server-sent events for `stream: true`: a finished completion body re-sent as OpenAI stream chunks.

What it is for: `selfplay serve` and `selfplay mock-server` answer `stream: true` with the chunks the
official clients parse: `chat.completion.chunk` objects (a first delta with the role, the content, a last
delta with `finish_reason`, per choice index) or `text_completion` chunks for `/v1/completions`; with
`stream_options.include_usage` every chunk carries `"usage": null` and one more chunk before
`data: [DONE]` carries the usage of the whole request with `"choices": []`.
What it does not do: generate token by token (the text is complete before the first chunk is sent, so
time-to-first-token equals the full latency), or parse streams (the `openai` backend does that).
"""

from __future__ import annotations

from typing import Any, Iterator

CHUNK_CHARS = 64  # content is split into pieces of this many characters, one chunk each


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def stream_chunks(payload: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """The chunk objects for a complete `chat.completion` or `text_completion` body."""
    chat = payload.get("object") == "chat.completion"
    head = {"id": payload["id"], "object": "chat.completion.chunk" if chat else "text_completion",
            "created": payload["created"], "model": payload["model"]}
    if "system_fingerprint" in payload:
        head["system_fingerprint"] = payload["system_fingerprint"]
    if include_usage:
        head["usage"] = None

    def chunk(choice: dict[str, Any]) -> dict[str, Any]:
        return {**head, "choices": [choice]}

    for choice in payload["choices"]:
        index = choice["index"]
        if not chat:
            text = choice.get("text") or ""
            for piece in _pieces(text)[:-1]:
                yield chunk({"index": index, "text": piece, "logprobs": None, "finish_reason": None})
            yield chunk({"index": index, "text": _pieces(text)[-1], "logprobs": None,
                         "finish_reason": choice.get("finish_reason")})
            continue
        message = choice.get("message") or {}
        yield chunk({"index": index, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                     "finish_reason": None})
        for piece in _pieces(message.get("content") or ""):
            if piece:
                yield chunk({"index": index, "delta": {"content": piece}, "logprobs": None, "finish_reason": None})
        calls = message.get("tool_calls") or []
        if calls:
            deltas = [{"index": i, "id": c.get("id"), "type": c.get("type", "function"),
                       "function": c.get("function", {})} for i, c in enumerate(calls)]
            yield chunk({"index": index, "delta": {"tool_calls": deltas}, "logprobs": None, "finish_reason": None})
        yield chunk({"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")})
    if include_usage:
        yield {**head, "choices": [], "usage": payload.get("usage")}


def sse_bytes(payload: dict[str, Any], include_usage: bool, dumps) -> Iterator[bytes]:
    """`data: {chunk}\\n\\n` per chunk, then `data: [DONE]\\n\\n` (`dumps`: the caller's JSON encoder)."""
    for item in stream_chunks(payload, include_usage):
        yield b"data: " + dumps(item).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _pieces(text: str) -> list[str]:
    return [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
