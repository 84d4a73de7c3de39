"""Plain-data records of LLM access: sampling parameters, usage, choices, results, and error kinds.

What it is for: the one vocabulary every backend (openai, local, vllm) speaks, so workflows run
unchanged on any of them. Everything here serialises to JSON (pydantic v2).
What it does not do: talk to any server, price anything, or retry anything.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Message = dict[str, Any]  # an OpenAI chat message: {"role", "content", "tool_calls"?, "tool_call_id"?}


class SamplingParams(BaseModel):
    """What to ask for. `n` is the number of samples wanted from this one call."""

    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=1.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1)

    def with_(self, **changes: Any) -> "SamplingParams":
        return self.model_copy(update=changes)


class Usage(BaseModel):
    """Tokens of one request. `estimated` is True when the server gave no usage and we counted."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __eq__(self, other: object) -> bool:
        """pydantic's equality (same class, same field values) without its generic-model, private and extra checks,
        which Usage has none of: serializing with `exclude_defaults` compares a candidate's usage to the default
        once per candidate, a million times at large K."""
        if isinstance(other, BaseModel):
            return type(other) is type(self) and self.__dict__ == other.__dict__
        return NotImplemented

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            estimated=self.estimated or other.estimated,
        )


class Choice(BaseModel):
    """One sampled assistant message.

    `token_ids`: the completion's token ids exactly as sampled, when the backend knows them (the local backend
    always; vLLM's server with `return_token_ids: true`): every sampled token, the eos included only when the
    sample ended on it, through the token that completed a stop string (the text is cut before the stop string).
    `logprobs`: the log-probability of each of those tokens under the model's unscaled distribution (temperature
    1, no top-p: what a trainer computes; vLLM's default `raw_logprobs`), one per token, when the backend gives them.
    """

    index: int
    message: Message
    finish_reason: str | None = None
    token_ids: list[int] | None = None
    logprobs: list[float] | None = None

    @property
    def text(self) -> str:
        return self.message.get("content") or ""


class ChatResult(BaseModel):
    """The reply to one logical call: its choices, usage, price and provenance.

    `requests` counts the HTTP requests (or engine calls) actually sent for it; a reply served from
    the run store's cache has `cache_hit=True`, `requests=0` and `cost_usd=0`.
    """

    model: str
    choices: list[Choice]
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_s: float = 0.0
    cache_hit: bool = False
    requests: int = 1


ErrorKind = Literal[
    "rate_limit", "server_error", "timeout", "connection", "bad_request", "auth", "not_found",
    "malformed_reply", "budget", "unknown",
]


class LLMError(Exception):
    """A call that failed for good (after retries where retrying makes sense).

    `kind` is recorded as data (summary `errors` by type); `retryable` says whether tenacity may try
    the same request again; `retry_after` (seconds) is the server's hint, when it gave one; `param` is the
    request parameter the server blamed (an OpenAI error body's `param`, e.g. "n"), when it named one.
    """

    def __init__(self, kind: ErrorKind, message: str, *, status: int | None = None,
                 retryable: bool = False, retry_after: float | None = None, param: str | None = None) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.param = param


class BudgetExceeded(LLMError):
    """A request was not sent because its worst-case cost does not fit under a cap."""

    def __init__(self, message: str, *, cap: str) -> None:
        super().__init__("budget", message)
        self.cap = cap
