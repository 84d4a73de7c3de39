"""The run store's SQL schema, its version, and the ordered migrations that bring an older store up to it.

What it is for: one place that lists every table of a run directory's `run.db` (`TABLES`, the current
schema, created whole in a new store) and how a store written by an older version becomes the current one
(`MIGRATIONS`). `RunStore` applies them on open (`apply_migrations`): a store at version v gets every step
with v < version <= SCHEMA_VERSION, in order, each in one transaction together with the new version number,
so a kill between two steps resumes at the next one; then `TABLES` adds whatever is new (every statement is
IF NOT EXISTS). A store written by a newer version is refused with an error naming both versions.
To change the schema: bump SCHEMA_VERSION, edit TABLES to the new shape, and append (new version, step) to
MIGRATIONS, where a step is SQL text or a function of the sqlite3 connection (it must not commit).
What it does not do: open files or take locks (`selfplay.core.store`), or downgrade.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from selfplay.core.errors import UserError

SCHEMA_VERSION = 1

# (version, step), in increasing version order. Version 1 is the first versioned schema: nothing before it.
Migration = tuple[int, "str | Callable[[sqlite3.Connection], None]"]
MIGRATIONS: list[Migration] = []

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
-- each distinct prompt once (a candidate's body names it by `prompt_id`: K samples share one row)
CREATE TABLE IF NOT EXISTS prompts (
    id TEXT PRIMARY KEY,
    messages TEXT NOT NULL
);
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


def stored_version(db: sqlite3.Connection) -> int | None:
    """The schema version a store records; None for a new, empty file (no `meta` table yet)."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:  # no meta table: nothing was ever written here
        return None
    return int(row[0]) if row else 1  # a meta table without a version: the first versioned schema


def apply_migrations(db: sqlite3.Connection, where: str, migrations: list[Migration] | None = None,
                     target: int | None = None) -> list[int]:
    """Bring the store on `db` (autocommit mode; `where` names it in errors) to `target` (SCHEMA_VERSION);
    returns the versions applied, in order."""
    migrations = MIGRATIONS if migrations is None else migrations
    target = SCHEMA_VERSION if target is None else target
    found = stored_version(db)
    if found is not None and found > target:
        raise UserError(f"{where}: written by a newer selfplay (store schema {found} > {target}); "
                        f"upgrade selfplay or use another --out directory")
    applied = []
    if found is not None:
        for version, step in sorted(migrations, key=lambda m: m[0]):
            if found < version <= target:
                _apply(db, version, step)
                applied.append(version)
    db.executescript(TABLES)
    if stored_version(db) != target or found is None:
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(target),))
    return applied


def _apply(db: sqlite3.Connection, version: int, step: "str | Callable[[sqlite3.Connection], None]") -> None:
    """One step and its version number in one transaction: both land, or neither."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if callable(step):
            step(db)
        else:
            for statement in _statements(step):
                db.execute(statement)
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """The complete statements of an SQL script (sqlite3.complete_statement decides where each ends)."""
    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    if current.strip():
        out.append(current.strip())
    return [s for s in out if s.rstrip(";").strip()]
