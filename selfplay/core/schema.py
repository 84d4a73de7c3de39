"""The run store's SQL schema and its version.

What it is for: one place that lists every table of a run directory's `run.db`.
What it does not do: migrations beyond refusing a store written by a newer schema (the store
raises a clear error naming the version).
"""

SCHEMA_VERSION = 1

TABLES = """
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
