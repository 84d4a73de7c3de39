"""Mock-server scripts: the file format, loading and validation.

What it is for: turning a TOML (`.toml`) or JSON (`.json`) file into a `Script`: an ordered list of rules,
each matching some conversations and holding one or more replies. Format (TOML shown; JSON has the same keys):

    models = ["mock-model"]          # optional: what GET /v1/models lists (any model name is accepted)

    [[rules]]
    name = "add"                     # optional; stats count matches per rule name (default "rules[i]")
    match = 'What is (\\d+) \\+ (\\d+)'  # optional regex, searched in the last user message
    contains = "What is"             # optional substring of the last user message
    role = "user"                    # optional: role of the last message (system, user, assistant, tool)
    tool_result = 'ok: (?P<v>\\w+)'   # optional regex, searched in the content of the last tool message
    first_user = '(?P<q>.+)'         # optional regex, searched in the first user message (e.g. the task
                                     # itself, when the last user message is a verifier's feedback)
    turn = 0                         # optional int or list: number of assistant messages so far
    model = "policy"                 # optional str or list: the request's model
    pick = "hash"                    # "hash" (default): a seeded stable hash picks the reply per choice;
                                     # "cycle": choice i gets replies[i % len(replies)]
    replies = ['{1} + {2} = {add:1,2}, so \\boxed{{add:1,2}}', 'I think \\boxed{{mul:1,2}}']

    [[rules]]
    contains = "weather"
    reply = { content = "", tool_calls = [{ name = "get_weather", arguments = { city = "Paris" } }] }

    [default]                        # optional fallback, used when no rule matches
    reply = "I don't know."

`reply = X` is short for `replies = [X]`. A reply is a string or a table with `content`, `tool_calls`
(each `{name, arguments, id?}`; arguments a table or a JSON string) and `finish_reason`. Templates are
described in `selfplay.servers.mock.templates`: positional groups `{1}` come from `match` (else `tool_result`,
else `first_user`), named groups `{name}` from all three. The first matching rule in file order wins.
What it does NOT do: match conversations or render replies (see `matching`), or talk HTTP.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.core.errors import UserError
from selfplay.servers.mock.templates import TemplateError, check_template

ROLES = {"system", "user", "assistant", "tool", "developer"}
CONDITION_KEYS = {"match", "contains", "first_user", "role", "tool_result", "turn", "model"}
RULE_KEYS = CONDITION_KEYS | {"name", "pick", "reply", "replies"}
REPLY_KEYS = {"content", "tool_calls", "finish_reason"}
TOOL_CALL_KEYS = {"name", "arguments", "id"}
TOP_KEYS = {"models", "rules", "default"}
DEFAULT_MODELS = ("mock-model",)


@dataclass(frozen=True)
class ToolCallTemplate:
    name: str
    arguments: Any  # a dict/list (rendered recursively, then JSON-encoded) or a str template
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    content: str | None
    tool_calls: tuple[ToolCallTemplate, ...] = ()
    finish_reason: str | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    replies: tuple[Reply, ...]
    match: re.Pattern | None = None
    contains: str | None = None
    role: str | None = None
    tool_result: re.Pattern | None = None
    first_user: re.Pattern | None = None
    turns: frozenset[int] | None = None
    models: frozenset[str] | None = None
    pick: str = "hash"


@dataclass(frozen=True)
class Script:
    rules: tuple[Rule, ...]
    default: Rule | None = None
    models: tuple[str, ...] = DEFAULT_MODELS
    source: str = "<inline>"


class ScriptError(UserError):
    """A script that cannot be loaded; the message names the file and the rule (index, name, line)."""


def load_script(path: str | Path) -> Script:
    """Read and validate a script file (`.json` is JSON; anything else is TOML)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"mock script {path}: cannot read it ({exc.strerror or exc})") from None
    fmt = "json" if path.suffix.lower() == ".json" else "toml"
    return parse_script(text, fmt=fmt, source=str(path))


def parse_script(text: str, fmt: str = "toml", source: str = "<inline>") -> Script:
    """Parse script text in `fmt` ("toml" or "json") and validate it."""
    data = _decode(text, fmt, source)
    return script_from_data(data, source=source, rule_lines=_rule_lines(text) if fmt == "toml" else None)


def script_from_data(data: dict, source: str = "<inline>", rule_lines: list[int] | None = None) -> Script:
    """Validate an already-decoded script (a dict shaped like the file)."""
    where = _Where(source, rule_lines)
    if not isinstance(data, dict):
        raise ScriptError(f"mock script {source}: the top level must be a table/object with a `rules` list")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise ScriptError(f"mock script {source}: unknown top-level key(s) {sorted(unknown)}; "
                          f"allowed: {sorted(TOP_KEYS)}")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ScriptError(f"mock script {source}: `rules` must be a list ([[rules]] tables in TOML)")
    rules = tuple(_build_rule(raw, where.rule(i)) for i, raw in enumerate(raw_rules))
    default = _build_default(data["default"], where) if "default" in data else None
    if not rules and default is None:
        raise ScriptError(f"mock script {source}: no rules and no [default]: the server could answer nothing")
    models = data.get("models", list(DEFAULT_MODELS))
    if not (isinstance(models, list) and models and all(isinstance(m, str) for m in models)):
        raise ScriptError(f"mock script {source}: `models` must be a non-empty list of strings")
    return Script(rules=rules, default=default, models=tuple(models), source=source)


def _decode(text: str, fmt: str, source: str) -> Any:
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScriptError(f"mock script {source}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                              f"{exc.msg}") from None
    toml = _toml_module()
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise ScriptError(f"mock script {source}: invalid TOML: {exc}") from None


def _toml_module():
    try:
        import tomllib
        return tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli
            return tomli
        except ImportError:
            raise ScriptError("TOML mock scripts need Python 3.11+ or the `tomli` package; "
                              "or write the script as .json") from None


def _rule_lines(text: str) -> list[int]:
    """Line numbers (1-based) of each `[[rules]]` header, to point errors at the right place."""
    return [n for n, line in enumerate(text.splitlines(), 1) if re.match(r"\s*\[\[\s*rules\s*\]\]", line)]


class _Where:
    """Builds the 'file, rule i (name, line n)' prefix of error messages."""

    def __init__(self, source: str, rule_lines: list[int] | None, label: str = "", line: int | None = None):
        self.source, self.rule_lines, self.label, self.line = source, rule_lines, label, line

    def rule(self, index: int) -> "_Where":
        line = self.rule_lines[index] if self.rule_lines and index < len(self.rule_lines) else None
        return _Where(self.source, None, f"rules[{index}]", line)

    def fail(self, message: str, name: str | None = None) -> ScriptError:
        label = self.label + (f" ({name!r})" if name and name != self.label else "")
        at = f" at line {self.line}" if self.line else ""
        return ScriptError(f"mock script {self.source}, {label}{at}: {message}")


def _build_default(raw: Any, where: _Where) -> Rule:
    here = _Where(where.source, None, "[default]")
    if not isinstance(raw, dict):
        raise here.fail("must be a table with `reply` or `replies`")
    conditions = set(raw) & CONDITION_KEYS
    if conditions:
        raise here.fail(f"the fallback takes no conditions (found {sorted(conditions)}); put them in a [[rules]]")
    return _build_rule({"name": "default", **raw}, here)


def _build_rule(raw: Any, where: _Where) -> Rule:
    if not isinstance(raw, dict):
        raise where.fail("a rule must be a table/object")
    name = raw.get("name", where.label)
    if not isinstance(name, str):
        raise where.fail("`name` must be a string")
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise where.fail(f"unknown key(s) {sorted(unknown)}; allowed: {sorted(RULE_KEYS)}", name)
    match = _regex(raw, "match", where, name)
    tool_result = _regex(raw, "tool_result", where, name)
    first_user = _regex(raw, "first_user", where, name)
    replies = _replies(raw, where, name)
    positional = match or tool_result or first_user
    count = (positional.groups + 1) if positional else 0
    names = {n for p in (match, tool_result, first_user) if p is not None for n in p.groupindex}
    for i, reply in enumerate(replies):
        for template in _templates_of(reply):
            try:
                check_template(template, count, names)
            except TemplateError as exc:
                raise where.fail(f"reply {i}: {exc}", name) from None
    return Rule(name=name, replies=replies, match=match, tool_result=tool_result, first_user=first_user,
                contains=_optional_str(raw, "contains", where, name), role=_role(raw, where, name),
                turns=_int_set(raw, "turn", where, name), models=_str_set(raw, "model", where, name),
                pick=_pick(raw, where, name))


def _regex(raw: dict, key: str, where: _Where, name: str) -> re.Pattern | None:
    pattern = _optional_str(raw, key, where, name)
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise where.fail(f"`{key}` is not a valid regex ({exc})", name) from None


def _optional_str(raw: dict, key: str, where: _Where, name: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise where.fail(f"`{key}` must be a string", name)
    return value


def _role(raw: dict, where: _Where, name: str) -> str | None:
    role = _optional_str(raw, "role", where, name)
    if role is not None and role not in ROLES:
        raise where.fail(f"`role` must be one of {sorted(ROLES)}, not {role!r}", name)
    return role


def _pick(raw: dict, where: _Where, name: str) -> str:
    pick = raw.get("pick", "hash")
    if pick not in ("hash", "cycle"):
        raise where.fail(f"`pick` must be \"hash\" or \"cycle\", not {pick!r}", name)
    return pick


def _int_set(raw: dict, key: str, where: _Where, name: str) -> frozenset[int] | None:
    value = raw.get(key)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise where.fail(f"`{key}` must be a non-negative integer or a list of them", name)
    return frozenset(values)


def _str_set(raw: dict, key: str, where: _Where, name: str) -> frozenset[str] | None:
    value = raw.get(key)
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) for v in values):
        raise where.fail(f"`{key}` must be a string or a list of strings", name)
    return frozenset(values)


def _replies(raw: dict, where: _Where, name: str) -> tuple[Reply, ...]:
    if ("reply" in raw) == ("replies" in raw):
        raise where.fail("give exactly one of `reply` (one reply) or `replies` (a list)", name)
    items = [raw["reply"]] if "reply" in raw else raw["replies"]
    if not isinstance(items, list) or not items:
        raise where.fail("`replies` must be a non-empty list", name)
    return tuple(_reply(item, where, name, i) for i, item in enumerate(items))


def _reply(item: Any, where: _Where, name: str, index: int) -> Reply:
    if isinstance(item, str):
        return Reply(content=item)
    if not isinstance(item, dict):
        raise where.fail(f"reply {index} must be a string or a table with `content` / `tool_calls`", name)
    unknown = set(item) - REPLY_KEYS
    if unknown:
        raise where.fail(f"reply {index}: unknown key(s) {sorted(unknown)}; allowed: {sorted(REPLY_KEYS)}", name)
    content = item.get("content")
    if content is not None and not isinstance(content, str):
        raise where.fail(f"reply {index}: `content` must be a string", name)
    calls = tuple(_tool_call(c, where, name, index) for c in item.get("tool_calls", []))
    if content is None and not calls:
        raise where.fail(f"reply {index}: needs `content`, `tool_calls` or both", name)
    finish = item.get("finish_reason")
    if finish is not None and not isinstance(finish, str):
        raise where.fail(f"reply {index}: `finish_reason` must be a string", name)
    return Reply(content=content, tool_calls=calls, finish_reason=finish)


def _tool_call(raw: Any, where: _Where, name: str, index: int) -> ToolCallTemplate:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise where.fail(f"reply {index}: each tool call needs a string `name`", name)
    unknown = set(raw) - TOOL_CALL_KEYS
    if unknown:
        raise where.fail(f"reply {index}: tool call keys {sorted(unknown)} unknown; allowed: "
                         f"{sorted(TOOL_CALL_KEYS)}", name)
    call_id = raw.get("id")
    if call_id is not None and not isinstance(call_id, str):
        raise where.fail(f"reply {index}: tool call `id` must be a string", name)
    return ToolCallTemplate(name=raw["name"], arguments=raw.get("arguments", {}), id=call_id)


def _templates_of(reply: Reply) -> list[str]:
    out = [reply.content] if reply.content else []
    for call in reply.tool_calls:
        out.append(call.name)
        out.extend(_strings_in(call.arguments))
    return out


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings_in(v)]
    return []
