"""Tasks: the records a job works on, and the strict loader of `tasks.jsonl`.

What it is for: one task per line, `{"id", "prompt", "answer"?, "kind"?, "tests"?, "metadata"?}`,
where `prompt` is a string or a list of chat messages. Every problem (bad JSON, a missing or
wrongly typed field, a duplicate id, an empty file) is a `UserError` naming the file and line.
Hugging Face datasets (`hf:NAME?...`, parquet / csv / json files) are read by `selfplay.tasks.sources`.
What it does not do: generate tasks (built-in task families live in `selfplay.tasks.builtin`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from selfplay.core.errors import UserError


class Task(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    prompt: str | list[dict[str, Any]]
    kind: Literal["math", "code", "open"] = "open"
    answer: str | None = None
    tests: list[Any] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("answer", mode="before")
    @classmethod
    def _answer_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @model_validator(mode="before")
    @classmethod
    def _infer_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and "kind" not in data:
            data = {**data, "kind": "code" if data.get("tests") else ("math" if "answer" in data else "open")}
        return data

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("prompt is empty")
        if isinstance(value, list):
            if not value or not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
                raise ValueError("prompt messages must be a non-empty list of {role, content}")
        return value

    def messages(self, system_prompt: str | None = None) -> list[dict[str, Any]]:
        chat = [{"role": "user", "content": self.prompt}] if isinstance(self.prompt, str) else list(self.prompt)
        if system_prompt and chat[0].get("role") != "system":
            chat = [{"role": "system", "content": system_prompt}, *chat]
        return chat


def load_tasks(path: str | Path) -> list[Task]:
    """Our JSONL; an `hf:` spec or a parquet / csv / json file goes through `selfplay.tasks.sources` (HF datasets)."""
    from selfplay.tasks.sources import is_source, load_source

    if is_source(str(path)):
        return load_source(str(path))
    path = Path(path)
    if not path.is_file():
        raise UserError(f"task file {path} does not exist (set [generate] tasks = \"...\" to a JSONL file)")
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="strict") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    task = _parse_line(path, number, line)
                    if task.id in seen:
                        raise UserError(f"{path}:{number}: duplicate task id {task.id!r} (first on line {seen[task.id]})")
                    seen[task.id] = number
                    tasks.append(task)
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8 JSONL") from exc
    if not tasks:
        raise UserError(f"{path}: no tasks (expected one JSON object per line)")
    return tasks


def _parse_line(path: Path, number: int, line: str) -> Task:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(data, dict):
        raise UserError(f"{path}:{number}: expected a JSON object like {{\"id\": ..., \"prompt\": ...}}")
    try:
        return Task.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "task"
        raise UserError(f"{path}:{number}: {where}: {err['msg']}") from exc
