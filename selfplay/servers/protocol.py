"""The OpenAI chat-completions wire format that `selfplay serve` accepts and answers.

What it is for: validating a request body into our `SamplingParams` (with messages that say what is wrong, for
a 400), and shaping a `ChatResult` into the JSON the official `openai` client parses (`choices`, `usage`,
`finish_reason`, ...) and an error into OpenAI's `{"error": {"message", "type", "param", "code"}}`.
`stream: true` is accepted (the app answers with `selfplay.servers.sse`); `/v1/completions` bodies are
validated by `CompletionRequest`.
Chat requests may ask, as vLLM's are asked, for `logprobs: true` (each choice's `logprobs.content[j]` =
`{token, logprob, bytes, top_logprobs: []}`, the sampled token's log-prob under the unscaled distribution, vLLM's
default) and `return_token_ids: true` (each choice's `token_ids` and the reply's `prompt_token_ids`); every
choice carries `token_ids` and `stop_reason` (null unless asked / set), as vLLM's do.
What it does not do: serve HTTP (`selfplay.servers.serve.app`), or support `top_logprobs` > 0 (the alternatives
are not kept), logprobs on `/v1/completions`, `tools` (the chat template's tool-call format is not parsed back),
`response_format`: those are refused with a 400 that names the field rather than silently ignored.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.llm.types import ChatResult, SamplingParams

DEFAULT_MAX_TOKENS = 256
MAX_N = 128
_REFUSED_WHEN_SET = ("top_logprobs", "response_format", "logit_bias", "best_of")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """The fields we honour; unknown fields are accepted and ignored, as OpenAI-compatible servers do."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    n: int = Field(default=1, ge=1, le=MAX_N)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    tools: list[dict[str, Any]] | None = None
    logprobs: bool | None = False          # each choice's sampled-token log-probs (logprobs.content), as vLLM
    return_token_ids: bool | None = False  # vLLM's extension: choices[i].token_ids and prompt_token_ids

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> list[str] | None:
        return _split_stops(value)

    def unsupported(self) -> str | None:
        """The name of a field we refuse (set to a non-default value), if any."""
        if self.tools:
            return "tools"
        extra = self.model_extra or {}
        for name in _REFUSED_WHEN_SET:
            if extra.get(name) not in (None, False, 0):
                return name
        return None

    def sampling_params(self) -> SamplingParams:
        return _params(self)

    def plain_messages(self) -> list[dict[str, Any]]:
        return [m.model_dump(exclude_none=True) for m in self.messages]


class CompletionRequest(BaseModel):
    """A `/v1/completions` body: one prompt string (the text is continued as is, no chat template)."""

    model_config = ConfigDict(extra="allow")

    model: str
    prompt: str | list[str]
    n: int = Field(default=1, ge=1, le=MAX_N)
    max_tokens: int | None = Field(default=16, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, value: str | list[str] | None) -> list[str] | None:
        return _split_stops(value)

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str:
        prompts = [value] if isinstance(value, str) else value
        if len(prompts) != 1 or not prompts[0]:
            raise ValueError("one non-empty prompt string per request (send several requests for several prompts)")
        return prompts[0]

    def unsupported(self) -> str | None:
        extra = self.model_extra or {}
        for name in (*_REFUSED_WHEN_SET, "logprobs", "echo", "suffix"):
            if extra.get(name) not in (None, False, 0, ""):
                return name
        return None

    def sampling_params(self) -> SamplingParams:
        return _params(self)


def _params(body: Any) -> SamplingParams:
    return SamplingParams(max_tokens=body.max_completion_tokens or body.max_tokens or DEFAULT_MAX_TOKENS,
                          temperature=body.temperature, top_p=body.top_p, stop=body.stop, seed=body.seed, n=body.n)


def _split_stops(value: str | list[str] | None) -> list[str] | None:
    if value is None:
        return None
    stops = [value] if isinstance(value, str) else value
    if any(not s for s in stops):
        raise ValueError("stop strings must be non-empty")
    return stops


def completion_body(result: ChatResult, model: str, *, logprobs: bool = False, token_ids: bool = False,
                    prompt_token_ids: list[int] | None = None, decode: Any = None) -> dict[str, Any]:
    """A `chat.completion` object for `result`; `logprobs` / `token_ids` add what vLLM adds when asked
    (`decode(ids) -> str` names each token in `logprobs.content`)."""
    usage = result.usage
    body = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": c.index, "message": {"role": "assistant", "content": c.text},
                     "finish_reason": c.finish_reason, "stop_reason": None,
                     "logprobs": _logprobs(c, decode) if logprobs else None,
                     "token_ids": c.token_ids if token_ids else None} for c in result.choices],
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                  "total_tokens": usage.total_tokens,
                  "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens}},
        "system_fingerprint": None,
    }
    if token_ids:
        body["prompt_token_ids"] = prompt_token_ids
    return body


def _logprobs(choice: Any, decode: Any) -> dict[str, Any] | None:
    """vLLM's chat `logprobs`: one `{token, logprob, bytes, top_logprobs}` per sampled token (None without them)."""
    if choice.token_ids is None or choice.logprobs is None:
        return None
    content = []
    for token_id, logprob in zip(choice.token_ids, choice.logprobs):
        token = decode([token_id]) if decode is not None else str(token_id)
        token = "" if "\ufffd" in token else token  # a partial UTF-8 byte: vLLM sends "" and no bytes
        content.append({"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": []})
    return {"content": content}


def text_completion_body(result: ChatResult, model: str) -> dict[str, Any]:
    """A `text_completion` object for `result` (the `/v1/completions` answer)."""
    body = completion_body(result, model)
    body.update(id=f"cmpl-{uuid.uuid4().hex}", object="text_completion",
                choices=[{"index": c.index, "text": c.text, "finish_reason": c.finish_reason, "logprobs": None}
                         for c in result.choices])
    return body


def error_body(message: str, *, kind: str = "invalid_request_error", param: str | None = None,
               code: str | int | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def describe_validation_errors(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One readable line from pydantic/FastAPI errors, and the first offending field (for `param`)."""
    parts, first = [], None
    for err in errors[:5]:
        location = [str(p) for p in err.get("loc", ()) if p != "body"]
        field = ".".join(location) or "body"
        first = first or field
        parts.append(f"{field}: {err.get('msg', 'invalid')}")
    return "; ".join(parts), first
