"""Read and check the dataset formats of the design (TRL-compatible JSONL / Parquet).

What it is for: turn a file (or in-memory rows) into validated rows, with errors that name the file and the row:
- SFT: `{"messages": [{"role", "content"}, ...]}` with at least one assistant message, or TRL's
  `{"prompt", "completion"}` (strings or message lists) and `{"text"}` rows;
- preference: `{"prompt": [...] | str, "chosen": [...] | str, "rejected": [...] | str}`;
- RL groups: `{"prompt": str | [...], "completions": [str, ...], "rewards": [number, ...]}`;
- PRM (hook for a later issue): `{"prompt", "completions": [step, ...], "labels": [bool, ...]}`.
Optional keys with the token ids a completion was sampled as (`trainer.encode` trains on them): SFT
`completion_token_ids`, preference `chosen_token_ids` / `rejected_token_ids`, RL groups `completion_token_ids`
and `completion_logprobs` (one list or null per completion; a log-prob per id). They are checked here too.
What it does not do: tokenize (see `trainer.encode`) or import the run store; rows are plain dicts.
"""

from __future__ import annotations

import json
import math
import os

from trainer.errors import DataError

ROLES = {"system", "user", "assistant", "tool"}




def read_rows(path: str) -> list[dict]:
    """All rows of a .jsonl/.json-lines or .parquet file, as dicts (row numbers in errors are 1-based)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file; pass a JSONL or Parquet dataset")
    rows = _read_parquet(path) if path.endswith(".parquet") else _read_jsonl(path)
    if not rows:
        raise DataError(f"{path}: the file has no rows; write at least one example")
    return rows


def _read_jsonl(path: str) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:row {number}: not valid JSON ({exc.msg}); "
                                "write one JSON object per line") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:row {number}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def _read_parquet(path: str) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow raises several types for a broken file
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None


def _where(source: str, index: int) -> str:
    return f"{source}:row {index + 1}"


def _check_messages(value, where: str, field: str, need_assistant: bool) -> None:
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: '{field}' must be a non-empty list of {{role, content}} messages")
    for i, message in enumerate(value):
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise DataError(f"{where}: {field}[{i}] must be an object with 'role' and 'content'")
        if message["role"] not in ROLES:
            raise DataError(f"{where}: {field}[{i}] has role {message['role']!r}; use one of {sorted(ROLES)}")
        if not isinstance(message["content"], str):
            raise DataError(f"{where}: {field}[{i}].content must be a string")
    if need_assistant and not any(m["role"] == "assistant" for m in value):
        raise DataError(f"{where}: '{field}' has no assistant message, so nothing to learn; add the assistant turn")


def _check_text_or_messages(value, where: str, field: str, need_assistant: bool) -> None:
    if isinstance(value, str):
        return
    _check_messages(value, where, field, need_assistant)


def _require(row: dict, fields: tuple, where: str, fmt: str) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected an object, got {type(row).__name__}")
    missing = [f for f in fields if f not in row]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}; a {fmt} row needs {', '.join(fields)}")


def _check_ids(value, where: str, field: str) -> None:
    if not isinstance(value, list) or not value or not all(type(t) is int and t >= 0 for t in value):
        raise DataError(f"{where}: '{field}' must be a non-empty list of token ids (ints >= 0); drop the key to "
                        f"train on the text")


def _check_group_tokens(row: dict, where: str) -> None:
    n = len(row["completions"])
    ids, logprobs = row.get("completion_token_ids"), row.get("completion_logprobs")
    if ids is None:
        if logprobs is not None:
            raise DataError(f"{where}: 'completion_logprobs' needs 'completion_token_ids' (a log-prob per sampled id)")
        return
    if not isinstance(ids, list) or len(ids) != n:
        raise DataError(f"{where}: 'completion_token_ids' must have one entry (a list of ids, or null) per completion")
    for j, entry in enumerate(ids):
        if entry is not None:
            _check_ids(entry, where, f"completion_token_ids[{j}]")
    if logprobs is None:
        return
    if not isinstance(logprobs, list) or len(logprobs) != n:
        raise DataError(f"{where}: 'completion_logprobs' must have one entry (a list, or null) per completion")
    for j, (entry, entry_ids) in enumerate(zip(logprobs, ids)):
        if entry is None:
            continue
        if entry_ids is None or not isinstance(entry, list) or len(entry) != len(entry_ids) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v <= 1e-6
                for v in entry):
            raise DataError(f"{where}: completion_logprobs[{j}] must hold one finite log-prob (<= 0) per id of "
                            f"completion_token_ids[{j}]")


def validate_sft(rows: list[dict], source: str = "<rows>") -> list[dict]:
    """Our `messages` rows, or TRL's other SFT shapes: `prompt` / `completion` (both strings or both message
    lists; trained on the completion) and `text` (language modelling: trained on the whole text)."""
    _nonempty(rows, source)
    for i, row in enumerate(rows):
        where = _where(source, i)
        if isinstance(row, dict) and "messages" not in row and "completion" in row:
            _require(row, ("prompt", "completion"), where, "prompt-completion")
            _check_text_or_messages(row["prompt"], where, "prompt", need_assistant=False)
            if isinstance(row["prompt"], str) != isinstance(row["completion"], str):
                raise DataError(f"{where}: prompt and completion must both be strings or both be message lists")
            _check_text_or_messages(row["completion"], where, "completion", need_assistant=True)
            if isinstance(row["completion"], str) and not row["completion"]:
                raise DataError(f"{where}: 'completion' is empty, so nothing to learn")
        elif isinstance(row, dict) and "messages" not in row and "text" in row:
            if not isinstance(row["text"], str) or not row["text"].strip():
                raise DataError(f"{where}: 'text' must be a non-empty string")
        else:
            _require(row, ("messages",), where, "SFT (or prompt/completion, or text)")
            _check_messages(row["messages"], where, "messages", need_assistant=True)
            if row.get("completion_token_ids") is not None:
                _check_ids(row["completion_token_ids"], where, "completion_token_ids")
    return rows


def validate_preference(rows: list[dict], source: str = "<rows>") -> list[dict]:
    _nonempty(rows, source)
    for i, row in enumerate(rows):
        where = _where(source, i)
        _require(row, ("prompt", "chosen", "rejected"), where, "preference")
        _check_text_or_messages(row["prompt"], where, "prompt", need_assistant=False)
        if isinstance(row["prompt"], str) != isinstance(row["chosen"], str) or \
                isinstance(row["chosen"], str) != isinstance(row["rejected"], str):
            raise DataError(f"{where}: prompt, chosen and rejected must all be strings or all be message lists")
        for field in ("chosen", "rejected"):
            _check_text_or_messages(row[field], where, field, need_assistant=True)
            if row.get(f"{field}_token_ids") is not None:
                _check_ids(row[f"{field}_token_ids"], where, f"{field}_token_ids")
    return rows


def validate_groups(rows: list[dict], source: str = "<rows>") -> list[dict]:
    _nonempty(rows, source)
    for i, row in enumerate(rows):
        where = _where(source, i)
        _require(row, ("prompt", "completions", "rewards"), where, "RL-group")
        _check_text_or_messages(row["prompt"], where, "prompt", need_assistant=False)
        completions, rewards = row["completions"], row["rewards"]
        if not isinstance(completions, list) or not completions or not all(isinstance(c, str) for c in completions):
            raise DataError(f"{where}: 'completions' must be a non-empty list of strings")
        if not isinstance(rewards, list) or len(rewards) != len(completions):
            raise DataError(f"{where}: 'rewards' must be a list with one number per completion "
                            f"({len(completions)} completions)")
        for r in rewards:
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r):
                raise DataError(f"{where}: reward {r!r} is not a finite number; record failed checks as data, not NaN")
        _check_group_tokens(row, where)
    return rows


def validate_prm(rows: list[dict], source: str = "<rows>") -> list[dict]:
    """Checked here so the format is pinned; PRM training itself is a later issue."""
    _nonempty(rows, source)
    for i, row in enumerate(rows):
        where = _where(source, i)
        _require(row, ("prompt", "completions", "labels"), where, "PRM")
        if len(row["completions"]) != len(row["labels"]) or not all(isinstance(b, bool) for b in row["labels"]):
            raise DataError(f"{where}: 'labels' must be one bool per step in 'completions'")
    return rows


def _nonempty(rows, source: str) -> None:
    if not rows:
        raise DataError(f"{source}: no rows; pass at least one example")


VALIDATORS = {"sft": validate_sft, "dpo": validate_preference, "grpo": validate_groups, "prm": validate_prm}


def load_dataset_file(path: str, kind: str) -> list[dict]:
    """Read `path` and validate it as `kind` (sft | dpo | grpo | prm)."""
    return VALIDATORS[kind](read_rows(path), source=path)
