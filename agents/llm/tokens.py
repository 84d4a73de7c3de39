"""Token counts when a server gives none, and the worst-case bound used for budget reservations.

What it is for: (1) `estimate_tokens`: a deterministic estimate used when a reply has no `usage`
(the figure is then marked `estimated`); (2) `prompt_token_upper_bound`: a bound that no real
tokenizer exceeds for ordinary text, so a reservation made with it is never too small.
What it does not do: reproduce any vendor's tokenizer exactly. Byte-level BPE tokenizers (GPT,
Llama 3, Qwen) emit at most one token per UTF-8 byte, which is what the bound relies on.
"""

from __future__ import annotations

import json
import re
from typing import Any

_PIECE = re.compile(r"\w+|[^\w\s]", re.UNICODE)
MESSAGE_OVERHEAD = 4  # role and separators per chat message (OpenAI's documented ~3-4)
REPLY_PRIMING = 3


def estimate_tokens(text: str) -> int:
    """A word-piece estimate: words, numbers and punctuation marks; long words count per 4 chars."""
    return sum(max(1, (len(p) + 3) // 4) for p in _PIECE.findall(text or ""))


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # multi-part content: keep the text parts
        content = " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    extra = json.dumps(message["tool_calls"]) if message.get("tool_calls") else ""
    return f"{message.get('role', '')} {content} {extra}"


def estimate_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(estimate_tokens(_message_text(m)) + MESSAGE_OVERHEAD for m in messages) + REPLY_PRIMING


def prompt_token_upper_bound(messages: list[dict[str, Any]], tools: list[dict] | None = None) -> int:
    """At most one token per UTF-8 byte, plus per-message overhead: safe for budget reservations."""
    size = sum(len(_message_text(m).encode()) + MESSAGE_OVERHEAD for m in messages) + REPLY_PRIMING
    if tools:
        size += len(json.dumps(tools).encode())
    return size
