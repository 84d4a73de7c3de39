"""Reading code out of a model's reply, and writing a tool's result back: the parsing half of `tool_use`.

What it is for: (1) the OpenAI tool schema of the one Python tool; (2) `read_tool_call`: one entry of
an assistant message's `tool_calls` -> the code to run, or a short error saying what was malformed
(not a dict, unknown function name, arguments not JSON, no `code` string); (3) `fenced_code`: the
```python blocks of a plain-text reply (for servers without function calling); (4) `observation`:
a tool's return value (a string, or any object with stdout / stderr / exit_code / timed_out, such
as a sandbox result) as the text the model sees, truncated.
What it does NOT do: run anything (the injected tool callable does), or decide when to stop.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_FENCE = re.compile(r"```[ \t]*([\w+-]*)[^\n]*\n(.*?)```", re.DOTALL)


def python_tool_schema(name: str, description: str) -> dict[str, Any]:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "required": ["code"], "properties": {
            "code": {"type": "string", "description": "Python source; print() what you want to see."}}}}}


@dataclass
class CodeRequest:
    """One piece of code the model asked to run: `call_id` is None for a fenced block; `error` is set
    (and `code` None) when the request was malformed."""

    call_id: str | None
    code: str | None
    error: str | None = None


def read_tool_call(call: Any, tool_name: str, fallback_id: str) -> CodeRequest:
    """Validate one tool call; every defect becomes `error`, never an exception."""
    if not isinstance(call, dict):
        return CodeRequest(fallback_id, None, f"tool call is not an object: {str(call)[:200]}")
    call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else fallback_id
    function = call.get("function")
    if not isinstance(function, dict):
        return CodeRequest(call_id, None, "tool call has no function")
    name = function.get("name")
    if name != tool_name:
        return CodeRequest(call_id, None, f"unknown tool {name!r}; the only tool is {tool_name!r}")
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError as exc:
            return CodeRequest(call_id, None, f"arguments are not valid JSON ({exc.msg} at char {exc.pos})")
    if not isinstance(arguments, dict):
        return CodeRequest(call_id, None, "arguments must be a JSON object with a 'code' string")
    code = arguments.get("code")
    if not isinstance(code, str) or not code.strip():
        return CodeRequest(call_id, None, "arguments have no 'code' string")
    return CodeRequest(call_id, code)


def fenced_code(text: str, languages: tuple[str, ...]) -> str | None:
    """All fenced blocks in one of `languages` joined (in order), or None when there are none."""
    blocks = [body for lang, body in _FENCE.findall(text or "") if lang.lower() in languages]
    return "\n\n".join(block.rstrip() for block in blocks) if blocks else None


def observation(value: Any, limit: int) -> str:
    """The text the model sees for a tool's return value."""
    if isinstance(value, str):
        text = value
    elif all(hasattr(value, attr) for attr in ("stdout", "stderr")):
        text = _sandbox_text(value)
    else:
        text = str(value)
    return truncate(text, limit)


def tool_failure(value: Any) -> str | None:
    """The sandbox's own failure carried by a result object (`error` set), else None."""
    error = getattr(value, "error", None)
    return f"the sandbox failed: {str(error)[:300]}" if isinstance(error, str) and error else None


def _sandbox_text(result: Any) -> str:
    parts = [str(result.stdout or "")]
    if result.stderr:
        parts.append(f"[stderr]\n{result.stderr}")
    if getattr(result, "output_truncated", False):
        parts.append("[output truncated]")
    if getattr(result, "timed_out", False):
        parts.append("[timed out]")
    elif getattr(result, "exit_code", 0) not in (0, None):
        parts.append(f"[exit code {result.exit_code}]")
    return "\n".join(part for part in parts if part) or "[no output]"


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    tail = limit - head
    return f"{text[:head]}\n... [{len(text) - limit} characters cut] ...\n{text[len(text) - tail:]}"
