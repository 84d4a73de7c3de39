"""Exports of the run store: JSONL and Parquet files written atomically; JSONL logs read back.

What it is for: files other tools read directly (TRL, HF `datasets`, pandas, jq). A file is
written to a temporary name and renamed, so a reader never sees half a file.
What it does not do: choose what to export (jobs and `selfplay.pipeline.datasets` do).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable


def read_jsonl_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSONL log a run appends to (training metrics); a line cut by a kill is skipped, the rest is
    still a curve; a missing file is no records."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def write_jsonl(rows: Iterable[dict[str, Any]], path: str | Path) -> int:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def write_json_lines(lines: Iterable[str], path: str | Path) -> int:
    """Lines that are already JSON text (one object each), written atomically."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def write_json(data: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def write_parquet(rows: list[dict[str, Any]], path: str | Path) -> int:
    """Nested rows (lists of messages) become Arrow list/struct columns, as HF `datasets` expects."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(pa.Table.from_pylist(rows), tmp)
    os.replace(tmp, path)
    return len(rows)
