"""Adapter: any verifier -> a TRL-style reward function `(completions, **columns) -> list[float | None]`.

What it is for: `GRPOTrainer(reward_funcs=[as_reward_function(verifiers.math.verify)])`. TRL passes the
batch's completions (plain strings, or chat messages: the last message's content is graded) and every
dataset column, as a list or any other sequence (a `datasets` Column, a tuple, an array: each is read into
a list once per batch); the adapter maps columns to verifier inputs, checks the batch in parallel
(see `compose.verify_batch`) and returns each verdict's score.

The reference: a verifier that takes `reference` (the math verifier) gets it from the first of the
columns TRL datasets use for it, `reference`, `answer`, `ground_truth`, `solution` (short-answer
columns first; a whole solution's last box is its answer), or from `reference_column="..."` (or
`columns={"reference": "..."}`). A batch with none of them raises `ReferenceColumnError` naming the
columns it has: never a silent batch of None or 0.0 rewards.

The finish reason: when the batch has a `finish_reason` or `finish_reasons` column (or keyword), each
completion's value is passed on as `finish_reason`, so a truncated completion ("length") is never
rewarded for a value it had not committed to (see `verifiers.math.conclusion`). TRL does not pass one,
but it passes `completion_ids`: with `max_completion_length=` (the trainer's setting) a completion of
that many tokens is "length" (it hit the limit; one that ends its EOS exactly there is counted too) and
a shorter one "stop".

A verifier error (timeout, crash) is returned as `on_error`, by default `None`: TRL reads None
as "no reward from this function for this sample" (NaN, ignored in the weighted sum) instead of
a silent 0 that would teach the policy that its answer was wrong.

What it does not do: import TRL or torch, log, or weight several verifiers (use
`compose.Weighted`, or TRL's own `reward_weights`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Callable, Mapping

from verifiers.cache import VerdictStore, verifier_identity
from verifiers.compose import Verifier, verify_batch

RewardFunction = Callable[..., list[float | None]]
REFERENCE_COLUMNS = ("reference", "answer", "ground_truth", "solution")
FINISH_REASON_COLUMNS = ("finish_reason", "finish_reasons")


class ReferenceColumnError(KeyError):
    """The batch has no column to read the reference from (a clear message, not KeyError's repr)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no reference column"


def as_reward_function(verifier: Verifier, *, columns: Mapping[str, str] | None = None,
                       reference_column: str | None = None, on_error: float | None = None,
                       max_concurrency: int = 8, cache: VerdictStore | None = None,
                       name: str | None = None, max_completion_length: int | None = None) -> RewardFunction:
    """Wrap `verifier`; `columns` maps verifier input -> dataset column (default: same names);
    `reference_column` names the reference's column (default: the first of `REFERENCE_COLUMNS` present);
    `max_completion_length` (TRL's) derives each finish reason from `completion_ids` when none is given."""
    mapping = dict(columns or {})
    if reference_column is not None:
        if mapping.get("reference", reference_column) != reference_column:
            raise ValueError(f"reference_column={reference_column!r} contradicts columns={mapping!r}")
        mapping["reference"] = reference_column
    wants_reference = takes_reference(verifier)
    reward_name = name or verifier_identity(verifier)["name"].rsplit(".", 1)[-1]

    def reward(completions: Sequence[Any], **batch_columns: Any) -> list[float | None]:
        completions = list(completions)
        batch_mapping = dict(mapping)
        if wants_reference and "reference" not in batch_mapping:
            batch_mapping["reference"] = find_reference_column(batch_columns, reward_name)
        columns = {name: _column_values(values) for name, values in batch_columns.items()}  # each read once
        finish = _finish_reasons(columns, len(completions), max_completion_length)
        items = [{"response": completion_text(c), **_row(columns, batch_mapping, i),
                  **({"finish_reason": finish[i]} if finish is not None else {})}
                 for i, c in enumerate(completions)]
        verdicts = verify_batch(verifier, items, max_concurrency=max_concurrency, cache=cache)
        return [on_error if v.error is not None else v.score for v in verdicts]

    reward.__name__ = reward_name
    reward.__qualname__ = reward.__name__
    return reward


def takes_reference(verifier: Any) -> bool:
    """Does the verifier (or a part of a composite) name a `reference` input?"""
    try:
        if "reference" in inspect.signature(verifier).parameters:
            return True
    except (TypeError, ValueError):
        pass
    parts = getattr(verifier, "parts", None)
    return isinstance(parts, Mapping) and any(takes_reference(part) for part in parts.values())


def find_reference_column(batch_columns: Mapping[str, Any], reward_name: str = "reward") -> str:
    """The first of `REFERENCE_COLUMNS` in the batch; else `ReferenceColumnError` listing what it saw."""
    for column in REFERENCE_COLUMNS:
        if column in batch_columns:
            return column
    raise ReferenceColumnError(
        f"reward function {reward_name!r} found no reference column: it looks for "
        f"{', '.join(REFERENCE_COLUMNS)}; the batch has {sorted(batch_columns) or 'no columns'}. "
        f"Name yours with as_reward_function(..., reference_column='<column>').")


def completion_text(completion: Any) -> str:
    """A TRL completion is a string or a list (any sequence) of chat messages: grade the last message's content."""
    if isinstance(completion, str):
        return completion
    if _is_column(completion) and len(completion) and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content") or "")
    if isinstance(completion, Mapping):
        return str(completion.get("content") or "")
    return "" if completion is None else str(completion)


def _is_column(values: Any) -> bool:
    """A per-row column: any sized, indexable sequence (list, tuple, `datasets` Column, array), never a string."""
    if isinstance(values, (str, bytes, bytearray, Mapping)):
        return False
    return isinstance(values, Sequence) or (hasattr(values, "__len__") and hasattr(values, "__getitem__")
                                            and hasattr(values, "__iter__"))


def _column_values(values: Any) -> Any:
    """A column's values as a list (read once: a lazy `datasets` Column decodes on every index), or the value
    itself when it is one value for the whole batch (a string, a number, a mapping)."""
    if isinstance(values, list) or not _is_column(values):
        return values
    return list(values)


def _finish_reasons(batch_columns: Mapping[str, Any], count: int,
                    max_completion_length: int | None = None) -> list[Any] | None:
    """Per-completion finish reasons from a `finish_reason(s)` column (a list, or one value for all), else
    from `completion_ids` and `max_completion_length` ("length" at the limit, "stop" below it). Columns are
    lists here (`_column_values`)."""
    ids = batch_columns.get("completion_ids")
    if (max_completion_length is not None and isinstance(ids, list) and len(ids) == count
            and not any(column in batch_columns for column in FINISH_REASON_COLUMNS)):
        return ["length" if len(tokens) >= max_completion_length else "stop" for tokens in ids]
    for column in FINISH_REASON_COLUMNS:
        if column in batch_columns:
            values = batch_columns[column]
            if isinstance(values, list):
                if len(values) != count:
                    raise ValueError(f"column {column!r} has {len(values)} values for {count} completions")
                return list(values)
            return [values] * count
    return None


def _row(batch_columns: Mapping[str, Any], mapping: Mapping[str, str], index: int) -> dict[str, Any]:
    """Row `index` of the batch (its columns read into lists, `_column_values`), renamed by `mapping` (verifier
    input name -> column name)."""
    row = {}
    for column, values in batch_columns.items():
        if column in FINISH_REASON_COLUMNS:
            continue
        if isinstance(values, list) and len(values) > index:
            row[column] = values[index]
    for verifier_input, column in mapping.items():
        if column not in row:
            raise ReferenceColumnError(f"reward function needs column {column!r}; the batch has {sorted(batch_columns)}")
        row[verifier_input] = row[column]
    return row
