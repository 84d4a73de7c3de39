"""Which rule answers a request, and which of its replies each choice gets.

What it is for: reducing a chat (or a completions prompt) to the few facts rules look at (last and first
user messages, role of the last message, content of the last tool message, turn = number of assistant messages so far,
model), finding the first matching rule, and rendering the reply of choice i. The reply of choice i is a
pure function of (server seed, the request's `seed` field, the messages or prompt, the model, i) through
SHA-256, so it never depends on arrival order, concurrency, retries, or sampling knobs like temperature.
What it does NOT do: tokens, truncation, usage or HTTP (see `tokens` and `app`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from selfplay.servers.mock.script import Reply, Rule, Script
from selfplay.servers.mock.templates import Groups, render


@dataclass(frozen=True)
class Conversation:
    last_user: str
    first_user: str
    last_role: str
    last_tool_result: str | None
    turn: int
    model: str


def text_of(content: Any) -> str:
    """Message content as text: a string, or the text parts of a list of content parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def chat_conversation(messages: list[dict], model: str) -> Conversation:
    users = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    last_tool = next((text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "tool"), None)
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    return Conversation(users[-1] if users else "", users[0] if users else "", str(messages[-1].get("role", "")),
                        last_tool, turn, model)


def prompt_conversation(prompt: str, model: str) -> Conversation:
    return Conversation(prompt, prompt, "user", None, 0, model)


def find_rule(script: Script, conv: Conversation) -> tuple[Rule, Groups] | None:
    """The first rule (file order) that matches, with its capture groups; then the default; else None."""
    for rule in script.rules:
        groups = rule_matches(rule, conv)
        if groups is not None:
            return rule, groups
    if script.default is not None:
        return script.default, Groups.empty()
    return None


def rule_matches(rule: Rule, conv: Conversation) -> Groups | None:
    if rule.models is not None and conv.model not in rule.models:
        return None
    if rule.role is not None and conv.last_role != rule.role:
        return None
    if rule.turns is not None and conv.turn not in rule.turns:
        return None
    if rule.contains is not None and rule.contains not in conv.last_user:
        return None
    found = rule.match.search(conv.last_user) if rule.match else None
    if rule.match and found is None:
        return None
    tool_found = None
    if rule.tool_result is not None:
        tool_found = rule.tool_result.search(conv.last_tool_result) if conv.last_tool_result is not None else None
        if tool_found is None:
            return None
    first_found = rule.first_user.search(conv.first_user) if rule.first_user else None
    if rule.first_user and first_found is None:
        return None
    return _groups(found, tool_found, first_found)


def _groups(found, tool_found, first_found) -> Groups:
    primary = found or tool_found or first_found
    positional = [primary.group(0), *primary.groups()] if primary else []
    named: dict[str, str | None] = {}
    for m in (first_found, tool_found, found):  # on a name clash: match > tool_result > first_user
        if m is not None:
            named.update(m.groupdict())
    return Groups(positional, named)


def stable_hash(*parts: Any) -> int:
    """A 64-bit integer from SHA-256 of the parts: the same on every run, process and machine."""
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def selection_key(server_seed: int, request_seed: Any, model: str, prompt: Any) -> str:
    """What reply choice depends on; `prompt` is the messages list or the completions prompt string."""
    prompt_digest = hashlib.sha256(canonical_json(prompt).encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{server_seed}|{request_seed}|{model}|{prompt_digest}"


def choose_reply(rule: Rule, choice_index: int, key: str) -> Reply:
    if rule.pick == "cycle":
        return rule.replies[choice_index % len(rule.replies)]
    return rule.replies[stable_hash(key, "reply", choice_index) % len(rule.replies)]


def render_reply(reply: Reply, groups: Groups, key: str, choice_index: int) -> tuple[str | None, list[dict]]:
    """The reply's content and OpenAI-shaped tool calls, templates filled in."""
    content = render(reply.content, groups) if reply.content is not None else None
    calls = []
    for j, call in enumerate(reply.tool_calls):
        call_id = render(call.id, groups) if call.id else f"call_{stable_hash(key, 'call', choice_index, j):016x}"
        calls.append({"id": call_id, "type": "function",
                      "function": {"name": render(call.name, groups), "arguments": _arguments(call.arguments, groups)}})
    return content, calls


def _arguments(arguments: Any, groups: Groups) -> str:
    if isinstance(arguments, str):
        return render(arguments, groups)
    return json.dumps(_render_tree(arguments, groups), ensure_ascii=False)


def _render_tree(value: Any, groups: Groups) -> Any:
    if isinstance(value, str):
        return render(value, groups)
    if isinstance(value, dict):
        return {k: _render_tree(v, groups) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_tree(v, groups) for v in value]
    return value
