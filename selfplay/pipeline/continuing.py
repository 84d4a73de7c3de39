"""The `local` backend that continues a final assistant message instead of answering it (prm-label's rollouts).

What it is for: Math-Shepherd rollouts ask the policy to go on from a step prefix, sent as an unfinished last
assistant message; `ContinuingLocalBackend` renders it with the chat template's `continue_final_message`, the
way `CONTINUE_EXTRA_BODY` (in `selfplay.pipeline.llm`) asks a vLLM / SGLang server to.
What it does not do: get built directly: `selfplay.pipeline.llm.build_backend(..., Engine(continue_final=True))`
builds it (this module imports torch, so the factory imports it only for a `local` backend).
"""

from __future__ import annotations

from typing import Any

from agents.llm.local import LocalBackend
from agents.llm.types import LLMError, Message


class ContinuingLocalBackend(LocalBackend):
    """The `local` backend; a chat whose last message is the assistant's is continued, not answered."""

    def encode(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> list[int]:
        if not messages or messages[-1].get("role") != "assistant":
            return super().encode(messages, tools)
        with self._tokenizer_lock:
            try:
                text = self._tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                                           add_generation_prompt=False, continue_final_message=True)
            except Exception as exc:  # noqa: BLE001 - a template that cannot render these messages
                raise LLMError("bad_request", f"chat template cannot continue this prefix: {exc}", status=400) from exc
            return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])
