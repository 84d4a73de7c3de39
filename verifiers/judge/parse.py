"""Read a judge's final structured answer out of its reply, tolerantly but never gullibly.

What it is for: servers with JSON mode or tool calling return one JSON object; others return prose with a
JSON object somewhere (often in a ```json fence). `parse_final(text, Model)` finds the top-level JSON
objects of the reply, left to right, and validates ONLY THE LAST one against the schema. Text outside
that object (a "score: 10" the judge quoted, a `[[A]]` marker, an earlier object it echoed from the
candidate) is never read, and an invalid last object is an error, not a reason to fall back to an
earlier one: falling back is exactly what would let an echoed candidate choose the verdict.
Tolerance: code fences and prose around the object, trailing commas, smart quotes, "8" for 8.
What it does not do: guess. No regex over prose, no "first number in the reply", no default score.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

T = TypeVar("T", bound=BaseModel)

_DECODER = json.JSONDecoder()
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_SMART_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"'})


@dataclass
class Parsed(Generic[T]):
    """The validated final object, or why there is none (`error`)."""

    value: T | None
    error: str | None = None


def top_level_objects(text: str) -> tuple[list[dict], bool]:
    """JSON objects of `text` not nested in another one, in order; and whether the reply ENDS in a broken one.

    A `{` that does not decode (even after `relax`) is skipped together with everything up to its matching
    `}` (braces counted naively), so nothing nested inside a malformed object is ever read. The flag is True
    when such a malformed span that looks like JSON (has a quote or a colon) comes after the last object.
    """
    found: list[dict] = []
    broken_after_last = False
    position = 0
    while (start := text.find("{", position)) >= 0:
        decoded = _decode_at(text, start)
        if decoded is None:
            relaxed = text[:start] + relax(text[start:])
            decoded = _decode_at(relaxed, start)
            text = relaxed if decoded is not None else text
        if decoded is None:
            close = _naive_close(text, start)
            broken_after_last = broken_after_last or _looks_like_json(text[start:close + 1])
            position = close + 1
            continue
        value, position = decoded
        if isinstance(value, dict):
            found.append(value)
            broken_after_last = False
    return found, broken_after_last


def _decode_at(text: str, start: int) -> tuple[object, int] | None:
    try:
        return _DECODER.raw_decode(text, start)
    except ValueError:
        return None


def _naive_close(text: str, start: int) -> int:
    """Index of the `}` closing the `{` at `start` by plain brace counting (the text end if none)."""
    depth = 0
    for index in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return index
    return len(text) - 1


def _looks_like_json(span: str) -> bool:
    return '"' in span or ":" in span


def relax(text: str) -> str:
    """The few repairs worth making to near-JSON: smart quotes and trailing commas."""
    return _TRAILING_COMMA.sub(r"\1", text.translate(_SMART_QUOTES))


def parse_final(text: str | None, model: type[T]) -> Parsed[T]:
    """Validate the last top-level JSON object of `text` against `model`."""
    if not text or not text.strip():
        return Parsed(None, "the reply is empty")
    objects, broken_after_last = top_level_objects(text)
    if broken_after_last:
        return Parsed(None, "the reply ends with a malformed JSON object")
    if not objects:
        return Parsed(None, "the reply contains no JSON object")
    obj = objects[-1]
    try:
        return Parsed(model.model_validate(obj))
    except ValidationError as exc:
        return Parsed(None, "the final JSON object does not match the schema: " + _short(exc))


def _short(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '(object)'}: {e['msg']}" for e in exc.errors()[:3]]
    return "; ".join(parts)
