"""Split a reasoning text into steps, for the process reward model.

What it is for: one segmentation rule shared by trajectories (agents) and the PRM (verifiers keeps
its own copy of the rule, as the leaf packages do not import each other): numbered steps
("Step 1:", "1." / "1)") when the text has at least two, else blank-line paragraphs, else lines;
a ``` fenced code block is never cut (it stays inside one step).
A custom separator string overrides all of that. `conversation_steps` does the same for a multi-turn
tool conversation: each assistant text is split as above, and each tool turn (the code the model ran
plus what came back) is one step.
What it does not do: understand the reasoning; it only cuts text.
"""

from __future__ import annotations

import json
import re
from typing import Any

_NUMBERED = re.compile(r"(?im)^\s*(?:step\s*\d+\s*[:.)]|\d+\s*[.)])\s+")


def split_steps(text: str, separator: str | None = None) -> list[str]:
    text = (text or "").strip()
    if not text:
        return []
    if separator:
        return [part.strip() for part in text.split(separator) if part.strip()]
    starts = [m.start() for m in _NUMBERED.finditer(text)]
    if len(starts) >= 2:
        bounds = ([0] if starts[0] > 0 else []) + starts + [len(text)]
        return [text[a:b].strip() for a, b in zip(bounds, bounds[1:]) if text[a:b].strip()]
    paragraphs = _keep_fences_whole(re.split(r"\n\s*\n", text), "\n\n")
    if len(paragraphs) >= 2:
        return paragraphs
    return _keep_fences_whole(text.splitlines(), "\n")


def _keep_fences_whole(pieces: list[str], joiner: str) -> list[str]:
    """Rejoin pieces that a cut made inside a ``` fenced block, so a code block stays one step."""
    if not any("```" in piece for piece in pieces):
        return [piece.strip() for piece in pieces if piece.strip()]
    out: list[str] = []
    open_piece: list[str] = []
    for piece in pieces:
        if open_piece or piece.strip():
            open_piece.append(piece)
        if open_piece and "\n".join(open_piece).count("```") % 2 == 0:
            out.append(joiner.join(open_piece).strip())
            open_piece = []
    if open_piece:
        out.append(joiner.join(open_piece).strip())
    return [piece for piece in out if piece]


def conversation_steps(messages: list[dict[str, Any]], max_observation_chars: int = 2000) -> list[str]:
    """Steps of the generated part of a tool conversation (pass the messages after the prompt).

    Assistant texts are split with `split_steps`; each OpenAI tool call becomes one step (its code and
    its tool result); a user message (the output of a fenced code block, in fenced mode) is one step.
    """
    results = {m.get("tool_call_id"): str(m.get("content") or "") for m in messages if m.get("role") == "tool"}
    steps: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "assistant":
            steps.extend(split_steps(str(message.get("content") or "")))
            for call in message.get("tool_calls") or []:
                steps.append(_tool_step(call, results.get(call.get("id")), max_observation_chars))
        elif role == "user":  # in the generated part of a tool conversation: a fenced-code observation
            steps.append(f"Output:\n{str(message.get('content') or '')[:max_observation_chars]}")
    return steps


def _tool_step(call: dict[str, Any], result: str | None, limit: int) -> str:
    function = call.get("function") or {}
    arguments = function.get("arguments", "")
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        code = parsed.get("code") if isinstance(parsed, dict) else None
    except ValueError:
        code = None
    body = code if isinstance(code, str) else f"{function.get('name', '?')}({arguments})"
    step = f"```python\n{body}\n```"
    return step if result is None else f"{step}\nOutput:\n{result[:limit]}"
