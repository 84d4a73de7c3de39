"""What a judge must answer: pydantic models of its final structured output, and their wire forms.

What it is for: one schema per question (pointwise score, pairwise winner), rendered three ways: an OpenAI
`response_format` (JSON mode with a strict schema), a tool definition (tool calling), and a compact
description for the prompt (plain-text mode). In every model the decision field comes LAST, after the
reasons, so the judge reasons first and decides second.
What it does not do: parse replies (see `verifiers.judge.parse`) or build prompts.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class PointwiseJudgment(BaseModel):
    """A 1-10 grade of one response, with the reasons that led to it."""

    model_config = ConfigDict(extra="ignore")

    reasons: str = Field(description="Short justification: what is right and what is wrong in the response.")
    score: int = Field(ge=1, le=10, description="Final grade, an integer from 1 (worst) to 10 (best).")


class PairwiseJudgment(BaseModel):
    """Which of two responses (as shown: A first, B second) is better."""

    model_config = ConfigDict(extra="ignore")

    reasons: str = Field(description="Short comparison of the two responses.")
    winner: Literal["A", "B", "tie"] = Field(description='"A", "B", or "tie" when neither is better.')


def schema_name(model: type[BaseModel]) -> str:
    """The snake_case name used for the tool and the JSON schema (e.g. `pointwise_judgment`)."""
    name = model.__name__
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema, closed (`additionalProperties: false`) as strict modes require."""
    schema = model.model_json_schema()
    _close_objects(schema)
    return schema


def _close_objects(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object":
            node["additionalProperties"] = False
            node.setdefault("required", list(node.get("properties", {})))
        for value in node.values():
            _close_objects(value)
    elif isinstance(node, list):
        for value in node:
            _close_objects(value)


def response_format(model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAI `response_format` asking for exactly this schema (JSON mode, strict)."""
    return {"type": "json_schema",
            "json_schema": {"name": schema_name(model), "schema": json_schema(model), "strict": True}}


def tool_definition(model: type[BaseModel]) -> dict[str, Any]:
    """An OpenAI tool whose arguments are this schema: the judge answers by calling it."""
    return {"type": "function",
            "function": {"name": "submit_" + schema_name(model),
                         "description": "Submit your final judgment. Call this exactly once.",
                         "parameters": json_schema(model)}}


def describe_for_prompt(model: type[BaseModel]) -> str:
    """One line per field (name, type, description) in schema order, for prompts in plain-text mode.

    A list of objects is described with its items' fields, indented under it.
    """
    schema = json_schema(model)
    return "\n".join(_describe_fields(schema, schema.get("$defs", {}), ""))


def _describe_fields(node: dict[str, Any], defs: dict[str, Any], indent: str) -> list[str]:
    lines = []
    for name, info in node.get("properties", {}).items():
        kind = " | ".join(json.dumps(v) for v in info["enum"]) if "enum" in info else info.get("type", "any")
        lines.append(f'{indent}- "{name}" ({kind}): {info.get("description", "")}'.rstrip())
        items = info.get("items", {})
        ref = items.get("$ref", "").rsplit("/", 1)[-1]
        if kind == "array" and ref in defs:
            lines.append(f"{indent}  each item an object with:")
            lines.extend(_describe_fields(defs[ref], defs, indent + "    "))
    return lines
