"""`RunView.generate_totals` (what `selfplay report` shows of a generate directory) as SQL aggregates: the same
figures as the implementation it replaced, which decoded every verified candidate's body in Python (copied below as
the reference), on a real generate run against the mock plus the rows a real run rarely holds (a rollout error with
a passing verdict, a candidate passed by two verifiers, bodies without usage, a version-1 body)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from selfplay.core.view import RunView
from selfplay.servers.testing import MockServer
from tests.gen_helpers import cli, write_job


def reference_generate_totals(run_dir: Path) -> dict[str, Any]:
    """`RunView.generate_totals` as it was before it became SQL aggregates (the bodies decoded in Python)."""
    with sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True) as conn:
        cost, prompt, completion = conn.execute(
            "SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0) "
            "FROM reservations WHERE status = 'settled'").fetchone()
        candidates = conn.execute("SELECT COUNT(*) FROM candidates WHERE error IS NULL").fetchone()[0]
        tasks = conn.execute("SELECT COUNT(DISTINCT task_id) FROM candidates WHERE error IS NULL").fetchone()[0]
        judged = conn.execute("SELECT COUNT(*) FROM (SELECT DISTINCT task_id, round, workflow, sample_index "
                              "FROM verdicts)").fetchone()[0]
        passed = conn.execute("SELECT c.body FROM candidates c WHERE c.error IS NULL AND EXISTS (SELECT 1 FROM "
                              "verdicts v WHERE v.task_id = c.task_id AND v.round = c.round AND v.workflow = "
                              "c.workflow AND v.sample_index = c.sample_index AND v.passed = 1)").fetchall()
    verified_tokens = sum((json.loads(body).get("usage") or {}).get("completion_tokens", 0) for (body,) in passed)
    return {"cost_usd": cost, "prompt_tokens": prompt, "completion_tokens": completion, "candidates": candidates,
            "tasks": tasks, "judged": judged, "verified": len(passed), "verified_tokens": verified_tokens}


def _generate(tmp_path: Path) -> Path:
    """A small `selfplay generate` run (3 tasks, K = 24, math verifier) against the mock."""
    with MockServer(seed=5, max_n=8) as server:
        config = write_job(tmp_path, server.base_url, tasks=3, k=24, concurrency=4, timeout_s=10.0)
        (tmp_path / "tasks.jsonl").write_text("".join(
            json.dumps({"id": f"t{i}", "prompt": f"What is {i} * 7?", "answer": str(7 * i)}) + "\n" for i in (5, 6, 8)))
        config.write_text(config.read_text().replace("seed = 11", 'seed = 11\nverifier = "math"'))
        out = tmp_path / "out"
        result = cli("generate", "--config", str(config), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    return out


def _add_rare_rows(db_path: Path) -> None:
    """Rows a streamed run seldom writes, each a case the totals must count as the reference does."""
    db = sqlite3.connect(db_path, isolation_level=None)

    def candidate(task: str, index: int, body: dict[str, Any], error: str | None = None) -> None:
        db.execute("INSERT INTO candidates VALUES (?, 0, 'direct', ?, ?, ?, 1.0)", (task, index, error, json.dumps(body)))

    def verdict(task: str, index: int, verifier: str, passed: bool) -> None:
        db.execute("INSERT INTO verdicts VALUES (?, 0, 'direct', ?, ?, ?, ?, NULL, '{}')",
                   (task, index, verifier, int(passed), float(passed)))

    candidate("x1", 0, {"final_answer": "1", "usage": {"prompt_tokens": 3, "completion_tokens": 11}})
    verdict("x1", 0, "math", True)
    verdict("x1", 0, "judge", True)  # passed twice: one verified candidate, its tokens counted once
    candidate("x1", 1, {"final_answer": "2", "usage": {"completion_tokens": 7}}, error="timeout")
    verdict("x1", 1, "math", True)  # a rollout error is never verified, whatever its verdict says
    candidate("x1", 2, {"final_answer": "3"})  # no usage: 0 tokens
    verdict("x1", 2, "math", True)
    candidate("x1", 3, {"final_answer": "4", "usage": None})  # usage null: 0 tokens
    verdict("x1", 3, "math", True)
    candidate("x1", 4, {"final_answer": "5", "usage": {"prompt_tokens": 2}})  # completion_tokens left out (default)
    verdict("x1", 4, "math", True)
    candidate("x2", 0, {"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}],
                        "final_answer": "2", "usage": {"prompt_tokens": 5, "completion_tokens": 13}})  # version 1
    verdict("x2", 0, "math", True)
    candidate("x2", 1, {"final_answer": "9", "usage": {"completion_tokens": 17}})
    verdict("x2", 1, "math", False)  # judged, not passed
    candidate("x3", 0, {"final_answer": "8", "usage": {"completion_tokens": 19}})  # never judged
    db.close()


def test_the_sql_totals_equal_the_decoding_reference_on_a_generate_run(tmp_path):
    out = _generate(tmp_path)
    expected = reference_generate_totals(out)
    assert expected["candidates"] == 72 and 0 < expected["verified"] < 72 and expected["verified_tokens"] > 0
    assert RunView(out).generate_totals() == expected

    _add_rare_rows(out / "run.db")
    expected = reference_generate_totals(out)
    totals = RunView(out).generate_totals()
    assert totals == expected
    assert [type(totals[k]) for k in sorted(totals)] == [type(expected[k]) for k in sorted(expected)]
    assert totals["candidates"] == 72 + 7 and totals["tasks"] == 3 + 3  # the rollout error is no candidate


def test_the_sql_totals_of_an_empty_store_are_zeros(tmp_path):
    from selfplay.core.store import RunStore

    with RunStore(tmp_path):
        pass
    assert RunView(tmp_path).generate_totals() == reference_generate_totals(tmp_path) == {
        "cost_usd": 0, "prompt_tokens": 0, "completion_tokens": 0, "candidates": 0, "tasks": 0, "judged": 0,
        "verified": 0, "verified_tokens": 0}
