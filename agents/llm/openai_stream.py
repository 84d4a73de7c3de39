"""Streamed chat completions for the `openai` backend: for servers that only answer `stream: true`.

What it is for: `OpenAIBackend(stream=True)` sends `stream: true` with `stream_options.include_usage`
and folds the server-sent `chat.completion.chunk`s back into one `chat.completion` body (content and
tool-call deltas joined per choice index, the last `finish_reason`, the usage chunk), which then goes
through the same validation as a non-streamed reply (`to_chat_result`).
What it does not do: hand partial text to the caller while it arrives (a job needs whole replies), or
retry a stream cut midway (the backend's retry policy does: the half-read reply is discarded).
"""

from __future__ import annotations

from typing import Any

from agents.llm.types import LLMError


async def post_streamed(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    """POST /chat/completions with `stream: true` through the SDK client; the folded reply's JSON."""
    import openai

    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    stream = await client.post("/chat/completions", body=body, cast_to=object, stream=True,
                               stream_cls=openai.AsyncStream[object])
    folded = ChunkFolder()
    async for chunk in stream:
        folded.add(chunk)
    return folded.body()


class ChunkFolder:
    """Accumulates stream chunks (plain JSON dicts) into one chat.completion body."""

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def add(self, chunk: Any) -> None:
        if not isinstance(chunk, dict):
            raise LLMError("malformed_reply", "stream chunk is not a JSON object", retryable=True)
        if "error" in chunk:
            raise LLMError("server_error", f"stream error: {chunk['error']}", retryable=True)
        for key in ("id", "model", "created", "system_fingerprint"):
            if chunk.get(key) is not None:
                self.head.setdefault(key, chunk[key])
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for raw in chunk.get("choices") or []:
            self._add_choice(raw)

    def _add_choice(self, raw: Any) -> None:
        if not isinstance(raw, dict) or type(raw.get("index")) is not int:
            raise LLMError("malformed_reply", "stream choice without an index", retryable=True)
        choice = self.choices.setdefault(raw["index"], {"index": raw["index"], "content": [], "calls": {},
                                                        "finish_reason": None})
        delta = raw.get("delta") or {}
        if isinstance(delta.get("content"), str):
            choice["content"].append(delta["content"])
        for call in delta.get("tool_calls") or []:
            slot = choice["calls"].setdefault(call.get("index", 0), {"id": None, "type": "function",
                                                                     "function": {"name": "", "arguments": ""}})
            if call.get("id"):
                slot["id"] = call["id"]
            function = call.get("function") or {}
            slot["function"]["name"] += function.get("name") or ""
            slot["function"]["arguments"] += function.get("arguments") or ""
        if raw.get("finish_reason"):
            choice["finish_reason"] = raw["finish_reason"]

    def body(self) -> dict[str, Any]:
        choices = []
        for index in sorted(self.choices):
            c = self.choices[index]
            message: dict[str, Any] = {"role": "assistant", "content": "".join(c["content"])}
            if c["calls"]:
                message["tool_calls"] = [c["calls"][i] for i in sorted(c["calls"])]
            choices.append({"index": index, "message": message, "finish_reason": c["finish_reason"]})
        return {**self.head, "object": "chat.completion", "choices": choices, "usage": self.usage}
