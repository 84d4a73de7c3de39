"""Tasks: the records a job works on, and the strict loader of `tasks.jsonl`.

What it is for: one task per line, `{"id", "prompt", "answer"?, "kind"?, "tests"?, "metadata"?}`,
where `prompt` is a string or a list of chat messages. Every problem (bad JSON, a missing or
wrongly typed field, a duplicate id, an empty file) is a `UserError` naming the file and line.
Hugging Face datasets (`hf:NAME?...`, parquet / csv / json files) are read by `selfplay.tasks.sources`.
What it does not do: generate tasks (built-in task families live in `selfplay.tasks.builtin`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator



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
