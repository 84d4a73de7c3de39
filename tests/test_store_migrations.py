"""The run store's ordered schema migrations: a store written by the version-1 schema text opens, resumes
(its ledger, its request cache, its rounds) and is migrated step by step, each step atomic with its version;
a store written by a newer version is refused with both versions named; read-only views read it without writing."""

from __future__ import annotations

import json
import sqlite3

import pytest

from agents.money.ledger import BudgetLedger, Caps
from selfplay.core import schema
from selfplay.core.errors import UserError
from selfplay.core.store import RunStore
from selfplay.core.view import RunView, run_dir_produced

# The schema text of version 1 exactly as selfplay 0.1.0 wrote it (commit 1cf3359, selfplay/core/schema.py).
V1_TABLES = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    body TEXT NOT NULL
);
-- the budget ledger AND the content-keyed request cache: one row per request reserved before it was
-- sent; settling it writes the real cost and (for a usable reply) the reply itself in ONE statement,
-- so a reply is never stored unpaid nor paid unstored
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    worst_usd REAL NOT NULL,
    worst_tokens INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('reserved', 'settled', 'orphaned')),
    usd REAL NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cached_tokens INTEGER NOT NULL DEFAULT 0,
    http_requests INTEGER NOT NULL DEFAULT 0,
    estimated INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    result TEXT,
    created REAL NOT NULL,
    settled REAL
);
-- (no index on status: it is read only when a job starts, and one costs every settlement ~75 us)
CREATE INDEX IF NOT EXISTS reservations_replies ON reservations(key) WHERE result IS NOT NULL;
CREATE TABLE IF NOT EXISTS candidates (
    task_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    error TEXT,
    body TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (task_id, round, workflow, sample_index)
);
CREATE TABLE IF NOT EXISTS verdicts (
    task_id TEXT NOT NULL,
    round INTEGER NOT NULL,
    workflow TEXT NOT NULL,
    sample_index INTEGER NOT NULL,
    verifier TEXT NOT NULL,
    passed INTEGER NOT NULL,
    score REAL NOT NULL,
    error TEXT,
    body TEXT NOT NULL,
    PRIMARY KEY (task_id, round, workflow, sample_index, verifier)
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    phase TEXT NOT NULL,
    body TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


def write_v1_store(run_dir) -> None:
    """A run directory as the version-1 code left it: a paid reply, a candidate, a finished round."""
    run_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(run_dir / "run.db", isolation_level=None)
    db.executescript(V1_TABLES)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    db.execute("INSERT INTO tasks VALUES ('t0', 0, ?)", (json.dumps({"id": "t0", "prompt": "1+1?", "answer": "2"}),))
    reply = {"text": "2", "usage": {"prompt_tokens": 5, "completion_tokens": 1}, "requests": 1}
    db.execute("INSERT INTO reservations(id, key, worst_usd, worst_tokens, status, usd, prompt_tokens, "
               "completion_tokens, http_requests, result, created, settled) "
               "VALUES ('r1', 'k1', 0.5, 10, 'settled', 0.25, 5, 1, 1, ?, 1.0, 2.0)", (json.dumps(reply),))
    db.execute("INSERT INTO reservations(id, key, worst_usd, worst_tokens, status, created) "
               "VALUES ('r2', 'k2', 0.125, 4, 'reserved', 3.0)")  # in flight when the old process died
    body = {"task_id": "t0", "sample_index": 0, "workflow": "direct", "final_answer": "2",
            "usage": {"prompt_tokens": 5, "completion_tokens": 1}, "error": None}
    db.execute("INSERT INTO candidates VALUES ('t0', 0, 'direct', 0, NULL, ?, 1.0)", (json.dumps(body),))
    db.execute("INSERT INTO rounds VALUES (0, 'done', ?, 1.0)", (json.dumps({"eval_pass@1": 0.5}),))
    db.close()


def test_a_version_1_store_opens_and_resumes_with_its_ledger_cache_and_rounds(tmp_path):
    write_v1_store(tmp_path)
    assert run_dir_produced(tmp_path)
    with RunStore(tmp_path) as store:
        assert store.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
        ledger = BudgetLedger(Caps(usd=1.0), backend=store)
        assert ledger.totals.spent_usd == pytest.approx(0.25)
        assert ledger.totals.orphaned_usd == pytest.approx(0.125)  # the old process's in-flight request
        assert store.get_response("k1")["text"] == "2"               # paid once, served from the cache again
        assert store.ok_candidate_counts(0, "direct") == {"t0": 1}
        assert [r["round"] for r in store.get_rounds()] == [0]
        store.put_round(1, "done", {"eval_pass@1": 0.75})          # and it takes new writes
    assert [r["round"] for r in RunView(tmp_path).rounds()] == [0, 1]


def _tables(path) -> dict[str, list[str]]:
    db = sqlite3.connect(path)
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    out = {n: [c[1] for c in db.execute(f"PRAGMA table_info({n})")] for n in names}
    db.close()
    return out


def test_migrations_apply_in_order_each_with_its_version_and_then_the_current_tables(tmp_path, monkeypatch):
    write_v1_store(tmp_path)
    seen = []

    def backfill(db: sqlite3.Connection) -> None:  # a function step sees the column the SQL step before added
        seen.append(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
        db.execute("UPDATE rounds SET note = 'from v1'")

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(schema, "MIGRATIONS", [(3, backfill), (2, "ALTER TABLE rounds ADD COLUMN note TEXT;")])
    monkeypatch.setattr(schema, "TABLES", schema.TABLES + "CREATE TABLE IF NOT EXISTS extra (x INTEGER);\n")
    with RunStore(tmp_path) as store:
        assert store.get_meta("schema_version") == "3"
    assert seen == ["2"]  # version 2 was recorded before step 3 ran
    tables = _tables(tmp_path / "run.db")
    assert "note" in tables["rounds"] and "extra" in tables
    db = sqlite3.connect(tmp_path / "run.db")
    assert db.execute("SELECT note FROM rounds").fetchall() == [("from v1",)]
    db.close()
    with RunStore(tmp_path) as store:  # opened again: nothing is applied twice
        assert store.get_meta("schema_version") == "3"
    assert seen == ["2"]


def test_a_failing_step_rolls_back_alone_and_the_next_open_resumes_there(tmp_path, monkeypatch):
    write_v1_store(tmp_path)
    calls = []

    def flaky(db: sqlite3.Connection) -> None:
        db.execute("UPDATE rounds SET phase = 'half-done'")
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("killed mid-step")

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(schema, "MIGRATIONS", [(2, "ALTER TABLE rounds ADD COLUMN note TEXT"), (3, flaky)])
    with pytest.raises(RuntimeError, match="killed mid-step"):
        RunStore(tmp_path)
    db = sqlite3.connect(tmp_path / "run.db")
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    assert db.execute("SELECT phase FROM rounds").fetchall() == [("done",)]  # step 3 left nothing behind
    db.close()
    with RunStore(tmp_path) as store:
        assert store.get_meta("schema_version") == "3" and len(calls) == 2


def test_a_fresh_store_is_created_at_the_current_version_without_running_migrations(tmp_path, monkeypatch):
    monkeypatch.setattr(schema, "MIGRATIONS", [(1, lambda db: pytest.fail("a new store runs no migration"))])
    with RunStore(tmp_path) as store:
        assert store.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    assert not run_dir_produced(tmp_path)  # a store with no result does not count as a run


def test_a_store_written_by_a_newer_version_is_refused_naming_both_versions(tmp_path):
    write_v1_store(tmp_path)
    db = sqlite3.connect(tmp_path / "run.db", isolation_level=None)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(schema.SCHEMA_VERSION + 1),))
    db.close()
    with pytest.raises(UserError, match=rf"store schema {schema.SCHEMA_VERSION + 1} > {schema.SCHEMA_VERSION}"):
        RunStore(tmp_path)


def test_the_read_only_view_writes_nothing(tmp_path):
    write_v1_store(tmp_path)
    before = (tmp_path / "run.db").read_bytes()
    view = RunView(tmp_path)
    assert view.produced() and [r["phase"] for r in view.rounds()] == ["done"]
    totals = view.generate_totals()
    assert totals["cost_usd"] == pytest.approx(0.25) and totals["candidates"] == 1 and totals["tasks"] == 1
    assert (tmp_path / "run.db").read_bytes() == before
    assert not RunView(tmp_path / "nowhere").produced()
