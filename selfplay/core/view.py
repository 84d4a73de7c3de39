"""A read-only view of a run directory's store: what readers beside a running job (or after it) may ask.

What it is for: the questions asked of a run directory without taking its lock or writing a byte:
whether it produced anything yet (the resume check), its round records (`selfplay report`), and the
totals of a `selfplay generate` directory. The SQL is the store's (`selfplay.core.store` owns the
writes and the schema); this module is its read-only half, opened with SQLite's `mode=ro`, so it is
safe beside a job that is writing.
What it does not do: write, migrate or lock (`RunStore` does); decide what a report shows.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from selfplay.core.store import DB_NAME

__all__ = ["RunView", "run_dir_produced"]

# A row in any of these means the directory holds a result (a paid reply counts: money was spent on it).
_PRODUCED = ("SELECT 1 FROM candidates LIMIT 1", "SELECT 1 FROM rounds LIMIT 1",
             "SELECT 1 FROM reservations WHERE result IS NOT NULL OR usd > 0 LIMIT 1")


class RunView:
    """`RunView(run_dir)`: read-only queries on `run_dir/run.db` (which must exist: see `exists`)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.path = self.dir / DB_NAME

    def exists(self) -> bool:
        return self.path.is_file()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)  # read-only: safe beside a running job

    def produced(self) -> bool:
        """Whether the store holds a candidate, a round or a paid reply (an unreadable store counts as one)."""
        if not self.exists():
            return False
        try:
            with self._connect() as conn:
                for sql in _PRODUCED:
                    try:
                        if conn.execute(sql).fetchone():
                            return True
                    except sqlite3.OperationalError:  # a table this store never created
                        continue
        except sqlite3.Error:
            return True  # unreadable: be safe, treat it as holding results
        return False

    def rounds(self) -> list[dict[str, Any]]:
        """Every round record, in round order, each with its `round` and `phase`."""
        with self._connect() as conn:
            rows = conn.execute("SELECT round, phase, body FROM rounds ORDER BY round").fetchall()
        return [{"round": r, "phase": p, **json.loads(b)} for r, p, b in rows]

    def generate_totals(self) -> dict[str, Any]:
        """What a `selfplay generate` directory holds: cost, tokens, candidates, tasks, judged and verified.

        SQL aggregates only, so the time and memory do not grow with what Python decodes (K = 1M candidates):
        `verified_tokens` is the completion tokens of the verified candidates, read from their bodies by SQLite's
        `json_extract` (no column holds a candidate's tokens, and this read-only view must read stores of every
        version as they are), found from the passing verdicts (a few of K) by the candidates' key, not by probing
        the verdicts once per candidate."""
        with self._connect() as conn:
            cost, prompt, completion = conn.execute(
                "SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) "
                "FROM reservations WHERE status = 'settled'").fetchone()
            candidates, tasks = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT task_id) FROM candidates WHERE error IS NULL").fetchone()
            judged = conn.execute("SELECT COUNT(*) FROM (SELECT DISTINCT task_id, round, workflow, sample_index "
                                  "FROM verdicts)").fetchone()[0]
            verified, verified_tokens = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(json_extract(c.body, '$.usage.completion_tokens')), 0) "
                "FROM candidates c WHERE c.error IS NULL AND (c.task_id, c.round, c.workflow, c.sample_index) IN "
                "(SELECT task_id, round, workflow, sample_index FROM verdicts WHERE passed = 1)").fetchone()
        return {"cost_usd": cost, "prompt_tokens": prompt, "completion_tokens": completion, "candidates": candidates,
                "tasks": tasks, "judged": judged, "verified": verified, "verified_tokens": verified_tokens}


def run_dir_produced(run_dir: str | Path) -> bool:
    """Whether a run directory holds any result: a candidate, a paid reply, a round or a checkpoint.

    A directory whose first start failed before producing anything (unreachable server, missing price,
    bad task file) holds only its `config.json`: a corrected config may then take it over.
    """
    checkpoints = Path(run_dir) / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.iterdir()):
        return True
    return RunView(run_dir).produced()
