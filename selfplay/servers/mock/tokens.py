"""Token counting, `stop`, `max_tokens` and `usage` for the mock server: a documented deterministic rule.

What it is for: giving clients exact, predictable token counts to test budgets and cost reports against.
The rule:
  - a token is a regex match of `\\w+|[^\\w\\s]` (a run of word characters, or one punctuation character);
    `tokens("What is 2+3?") == 6`;
  - chat prompt_tokens = 3 + sum over messages of (4 + tokens(content) + tokens(name) + per tool call
    tokens(function name) + tokens(arguments)), plus tokens(JSON of `tools`) when the request has tools;
  - completions prompt_tokens = tokens(prompt);
  - completion_tokens of a choice = tokens(content) + per tool call tokens(name) + tokens(arguments);
    the response's completion_tokens sums all choices; prompt_tokens counts the prompt once whatever `n` is;
  - `stop` cuts the reply at the first occurrence of any stop string (finish_reason "stop"); then
    `max_tokens` (or `max_completion_tokens`) keeps the first max_tokens tokens of the text, up to the end
    of the last kept token (finish_reason "length"); tool calls are dropped when they do not fit.
What it does NOT do: imitate any real tokenizer; `cached_tokens` is always 0.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOKEN = re.compile(r"\w+|[^\w\s]")
PER_MESSAGE = 4
PER_PROMPT = 3


def count_tokens(text: str | None) -> int:
    return len(TOKEN.findall(text)) if text else 0


def _tool_call_tokens(calls: list[dict]) -> int:
    total = 0
    for call in calls or []:
        fn = call.get("function") or {}
        total += count_tokens(str(fn.get("name", ""))) + count_tokens(str(fn.get("arguments", "")))
    return total


def chat_prompt_tokens(messages: list[dict], tools: Any, text_of) -> int:
    total = PER_PROMPT
    for message in messages:
        total += PER_MESSAGE + count_tokens(text_of(message.get("content")))
        total += count_tokens(message.get("name")) + _tool_call_tokens(message.get("tool_calls"))
    if tools:
        total += count_tokens(json.dumps(tools, sort_keys=True))
    return total


def completion_tokens(content: str | None, tool_calls: list[dict]) -> int:
    return count_tokens(content) + _tool_call_tokens(tool_calls)


def apply_stop(text: str, stop: Any) -> tuple[str, bool]:
    """Cut at the earliest stop string; True when one was found."""
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def truncate(text: str, max_tokens: int) -> str:
    """The prefix of `text` that holds its first `max_tokens` tokens."""
    if max_tokens <= 0:
        return ""
    for n, match in enumerate(TOKEN.finditer(text), 1):
        if n == max_tokens:
            return text[: match.end()]
    return text


def finish_choice(content: str | None, tool_calls: list[dict], stop: Any, max_tokens: int | None,
                  scripted_finish: str | None) -> tuple[str | None, list[dict], str]:
    """Apply stop and max_tokens to one rendered reply; returns (content, tool_calls, finish_reason)."""
    finish = scripted_finish or ("tool_calls" if tool_calls else "stop")
    if content is not None and stop:
        content, stopped = apply_stop(content, stop)
        if stopped:
            tool_calls, finish = [], "stop"
    if max_tokens is not None and completion_tokens(content, tool_calls) > max_tokens:
        content = truncate(content or "", max_tokens)
        tool_calls, finish = [], "length"
    return content, tool_calls, finish


def usage_block(prompt_tokens: int, completion_tokens_total: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens_total,
        "total_tokens": prompt_tokens + completion_tokens_total,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
