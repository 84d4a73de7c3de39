"""Ask an LLM one question whose answer must fit a pydantic schema: pick the mode, parse, repair once.

What it is for: the one place where judges (and the LLM-as-PRM) talk to their model. It asks in the
strictest mode the server supports (JSON schema > tool calling > plain text with a tolerant parser),
parses only the final JSON object (`verifiers.judge.parse`), and when that fails sends at most
`max_repairs` follow-ups quoting the problem. A call that raises (network, budget refusal) is not
retried here (the backend retries what is worth retrying) and is returned as an error with its kind.
What it does not do: decide what the answer means (the judges do), or ever invent a value: the result
is a validated model instance, or None with an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from verifiers.judge.llm import pick_mode
from verifiers.judge.parse import parse_final
from verifiers.judge.prompts import repair_messages
from verifiers.judge.schema import response_format, tool_definition

T = TypeVar("T", bound=BaseModel)


@dataclass
class AskConfig:
    """How to ask: structured mode ("auto" picks the strictest the LLM declares), sampling, repairs."""

    mode: str = "auto"
    max_tokens: int = 1024
    temperature: float = 0.0
    max_repairs: int = 1


@dataclass
class Answer(Generic[T]):
    """A validated answer (`value`), or why there is none (`error`, `error_kind`), plus what was seen."""

    value: T | None
    mode: str
    calls: int = 0
    replies: list[str] = field(default_factory=list)
    error: str | None = None
    error_kind: str | None = None  # "unparseable" or the failed call's kind ("budget", "timeout", ...)

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "calls": self.calls}
        if self.error:
            out["error_kind"] = self.error_kind
            out["last_reply"] = (self.replies[-1] if self.replies else "")[:500]
        return out


async def ask(llm: Any, messages: list[dict[str, Any]], schema: type[T], config: AskConfig | None = None) -> Answer[T]:
    """Ask `llm` and return the validated final object of its reply (after at most `max_repairs` repairs)."""
    config = config or AskConfig()
    mode = pick_mode(llm, config.mode)
    answer: Answer[T] = Answer(value=None, mode=mode)
    for attempt in range(config.max_repairs + 1):
        try:
            reply = await _complete(llm, messages, schema, mode, config)
        except Exception as exc:  # noqa: BLE001 - a failed call is data (its kind), never a score
            answer.error = f"judge call failed: {type(exc).__name__}: {str(exc)[:300]}"
            answer.error_kind = str(getattr(exc, "kind", None) or type(exc).__name__)
            return answer
        answer.calls += 1
        answer.replies.append(reply)
        parsed = parse_final(reply, schema)
        if parsed.value is not None:
            answer.value, answer.error, answer.error_kind = parsed.value, None, None
            return answer
        answer.error, answer.error_kind = f"judge reply not usable: {parsed.error}", "unparseable"
        if attempt < config.max_repairs:
            messages = repair_messages(messages, reply, parsed.error or "invalid", schema, mode)
    return answer


async def _complete(llm: Any, messages: list[dict[str, Any]], schema: type[BaseModel], mode: str,
                    config: AskConfig) -> str:
    reply = await llm.complete(
        messages, max_tokens=config.max_tokens, temperature=config.temperature,
        response_format=response_format(schema) if mode == "json_schema" else None,
        tools=[tool_definition(schema)] if mode == "tools" else None)
    return reply if isinstance(reply, str) else str(reply or "")
