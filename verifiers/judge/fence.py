"""Put untrusted text (a candidate response, a generated task) in front of a judge as data, not as orders.

What it is for: `fence(text, label)` wraps the text between BEGIN/END markers that carry a nonce derived
from the text itself (a hash), so the text cannot contain its own closing marker and "close the fence"
early; and it quotes every line with "| ", so nothing in it can sit at the start of a line of the prompt
(a fake "### System:" header, a fake END marker, a fake "Verdict:" line). `render_prompt` turns a task
prompt given as chat messages into plain text before fencing.
What it does not do: make a judge model immune to persuasion. It removes the structural ways to escape
the data block; the system prompt tells the judge the block is data; the parser ignores everything but
the judge's own final JSON. A judge model can still be fooled by a convincing wrong answer.
"""

from __future__ import annotations

import hashlib
from typing import Any

QUOTE = "| "


def nonce(text: str) -> str:
    """12 hex digits of sha256(text): stable (so requests stay cacheable), unguessable from inside `text`."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def quote_lines(text: str) -> str:
    return "\n".join(QUOTE + line for line in text.split("\n"))


def fence(text: str, label: str) -> str:
    """`text` quoted line by line between `<<<BEGIN LABEL nonce>>>` and `<<<END LABEL nonce>>>`."""
    tag = f"{label} {nonce(label + chr(0) + text)}"
    return f"<<<BEGIN {tag}>>>\n{quote_lines(text)}\n<<<END {tag}>>>"


def render_prompt(prompt: str | list[dict[str, Any]] | None) -> str:
    """A task prompt as text: a string as is; chat messages as `role: content` blocks."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    blocks = []
    for message in prompt:
        content = message.get("content")
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
        blocks.append(f"{message.get('role', 'user')}: {content or ''}")
    return "\n\n".join(blocks)
