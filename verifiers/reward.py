"""Adapter: any verifier -> a TRL-style reward function `(completions, **columns) -> list[float | None]`.

What it is for: `GRPOTrainer(reward_funcs=[as_reward_function(verifiers.math.verify,
columns={"reference": "answer"})])`. TRL passes the batch's completions (plain strings, or chat
messages: the last message's content is graded) and every dataset column as a list; the adapter
maps columns to verifier inputs, checks the batch in parallel (see `compose.verify_batch`) and
returns each verdict's score.

A verifier error (timeout, crash) is returned as `on_error`, by default `None`: TRL reads None
as "no reward from this function for this sample" (NaN, ignored in the weighted sum) instead of
a silent 0 that would teach the policy that its answer was wrong.

What it does not do: import TRL or torch, log, or weight several verifiers (use
`compose.Weighted`, or TRL's own `reward_weights`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from verifiers.cache import VerdictStore, verifier_identity
from verifiers.compose import Verifier, verify_batch

RewardFunction = Callable[..., list[float | None]]


def as_reward_function(verifier: Verifier, *, columns: Mapping[str, str] | None = None,
                       on_error: float | None = None, max_concurrency: int = 8,
                       cache: VerdictStore | None = None, name: str | None = None) -> RewardFunction:
    """Wrap `verifier`; `columns` maps verifier input -> dataset column (default: same names)."""
    mapping = dict(columns or {})

    def reward(completions: list[Any], **batch_columns: Any) -> list[float | None]:
        items = [{"response": completion_text(c), **_row(batch_columns, mapping, i)} for i, c in enumerate(completions)]
        verdicts = verify_batch(verifier, items, max_concurrency=max_concurrency, cache=cache)
        return [on_error if v.error is not None else v.score for v in verdicts]

    reward.__name__ = name or verifier_identity(verifier)["name"].rsplit(".", 1)[-1]
    reward.__qualname__ = reward.__name__
    return reward


def completion_text(completion: Any) -> str:
    """A TRL completion is a string or a list of chat messages: grade the last message's content."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content") or "")
    if isinstance(completion, Mapping):
        return str(completion.get("content") or "")
    return "" if completion is None else str(completion)


def _row(batch_columns: Mapping[str, Any], mapping: Mapping[str, str], index: int) -> dict[str, Any]:
    """Row `index` of the batch, renamed by `mapping` (verifier input name -> column name)."""
    row = {}
    for column, values in batch_columns.items():
        if isinstance(values, (list, tuple)) and len(values) > index:
            row[column] = values[index]
    for verifier_input, column in mapping.items():
        if column not in row:
            raise KeyError(f"reward function needs column {column!r}; batch has {sorted(batch_columns)}")
        row[verifier_input] = row[column]
    return row
