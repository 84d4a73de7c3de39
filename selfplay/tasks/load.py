"""Load a task list from the path a config names: our JSONL (one Task per line), else a source (`sources`).

What it is for: the one entry point jobs call; every bad line is a UserError naming the file, line and key.
What it does not do: choose train / eval / seed splits (`selfplay.tasks.loop`).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from selfplay.core.errors import UserError
from selfplay.tasks.sources import is_source, load_source
from selfplay.tasks.task import Task


def load_tasks(path: str | Path) -> list[Task]:
    """Our JSONL; an `hf:` spec or a parquet / csv / json file goes through `selfplay.tasks.sources` (HF datasets)."""
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
