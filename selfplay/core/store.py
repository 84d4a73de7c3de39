"""The run store: one SQLite file (WAL mode) per run directory, the single source of truth of a job.

What it is for: tasks, the content-keyed request cache, the budget ledger (it is the ledger's
`LedgerBackend` and the metered LLM's `ResponseCache`), candidates, verdicts and round records.
Every write is its own committed transaction, so a `kill -9` at any moment loses at most the
write in progress and never corrupts the file (SQLite's WAL guarantees that). Inside
`group_commits()` (an asyncio job with many requests in flight), the frequent writes (reservations,
settlements, candidates, verdicts) share commits instead, because a commit costs far more than the
write: they commit together when a request waits for its reservation (`durable()`, at most one
commit per event-loop turn), when any other write lands, and at least every `max_delay_s`. A
reservation is still on disk before its request is sent; what a `kill -9` can lose is at most the
last `max_delay_s` of settlements, candidates and verdicts: such a reservation counts as orphaned
(its worst case, like a request on the wire), and on resume the candidates come back from the
cache and the verdicts are checked again.
A settled request's cost and its reply are written in ONE statement on its ledger row: a reply is
never stored unpaid nor paid unstored. An exclusive lock file keeps two processes off one run directory.
What it does not do: network access (the store is local; a cluster sends results to one writer),
or any decision about what to generate or train.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from agents.money.ledger import Reservation, Totals
from selfplay.core.candidate import Candidate
from selfplay.core.errors import UserError
from selfplay.core.schema import apply_migrations

DB_NAME = "run.db"
PROMPT_CACHE = 4096  # prompts kept decoded in memory (a bounded cache; the table holds them all)


class StoreReads:
    """The reads `RunStore` and `RunReader` share (one definition each): rows under the lock, candidates with their
    prompt (stored once, cached with a bound), the curve's answer classes and the per-task sample costs. Subclasses
    set `_db`, `_lock` and `_prompts`."""

    _db: sqlite3.Connection
    _lock: threading.RLock
    _prompts: dict[str, list[dict[str, Any]]]

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _candidate(self, body: str) -> Candidate:
        data = json.loads(body)
        pid = data.pop("prompt_id", None)
        return Candidate.from_store(data, self._prompt(pid) if pid else None)

    def _prompt(self, pid: str) -> list[dict[str, Any]]:
        found = self._prompts.get(pid)
        if found is None:
            rows = self._read("SELECT messages FROM prompts WHERE id = ?", (pid,))
            found = json.loads(rows[0][0]) if rows else []
            if len(self._prompts) >= PROMPT_CACHE:  # bounded: memory does not grow with the number of tasks
                self._prompts.pop(next(iter(self._prompts)))
            self._prompts[pid] = found
        return found

    def answer_classes(self, round_: int, verifier: str) -> Iterator[tuple[str, str | None, bool, float, int]]:
        """(task id, extracted answer as JSON text or None, passed, score, how many) over the round's candidates
        without error that `verifier` judged: what pass@k, maj@k and best-of-k need, without decoding a body."""
        rows = self._read(
            "SELECT c.task_id, json_extract(v.body, '$.details.extracted'), "
            "v.passed AND COALESCE(v.error, '') = '', v.score, COUNT(*) "
            "FROM candidates c JOIN verdicts v ON v.task_id = c.task_id AND v.round = c.round "
            "AND v.workflow = c.workflow AND v.sample_index = c.sample_index AND v.verifier = ? "
            "WHERE c.round = ? AND c.error IS NULL GROUP BY 1, 2, 3, 4", (verifier, round_))
        for task_id, answer, passed, score, count in rows:
            yield task_id, answer, bool(passed), float(score), count

    def task_sample_costs(self, round_: int) -> dict[str, tuple[int, float]]:
        """Per task: (candidates without error, $ of all its candidates, failed ones included)."""
        rows = self._read("SELECT task_id, SUM(error IS NULL), COALESCE(SUM(json_extract(body, '$.cost_usd')), 0) "
                          "FROM candidates WHERE round = ? GROUP BY task_id", (round_,))
        return {task_id: (ok, float(cost)) for task_id, ok, cost in rows}


class RunStore(StoreReads):
    """SQLite-backed store; methods are thread-safe (one connection behind a lock)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = _take_dir_lock(self.dir)
        self.path = self.dir / DB_NAME
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint=16384")  # fewer, larger checkpoints: less fsync stall per write
        try:
            apply_migrations(self._db, str(self.path))  # an older store is brought up to SCHEMA_VERSION, in order
        except BaseException:  # refused (newer schema) or a step failed: release the file and the lock
            self._db.close()
            self._lock_file.close()
            raise
        self._replies_stored = bool(self._read("SELECT 1 FROM reservations WHERE result IS NOT NULL LIMIT 1"))
        self._replied_keys: set[str] = set()  # replies stored by this process (when none were before it)
        self.had_candidates = bool(self._read("SELECT 1 FROM candidates LIMIT 1"))  # False: a fresh run
        self._grouping = False  # inside group_commits(): staged writes wait for a shared commit
        self._commit_due: asyncio.Future | None = None
        self._prompt_ids: set[str] = set()  # prompts this process stored (INSERT OR IGNORE handles the rest)
        self._prompts: dict[str, list[dict[str, Any]]] = {}

    # --- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self.commit()
            self._db.close()
        self._lock_file.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, args: Any = (), *, many: bool = False, staged: bool = False) -> None:
        """One write, committed at once (with everything staged before it), unless it is `staged`
        inside `group_commits()`: then it waits in the open transaction for the next commit."""
        with self._lock:
            if not self._db.in_transaction:
                self._db.execute("BEGIN")
            try:
                (self._db.executemany if many else self._db.execute)(sql, args)
            except BaseException:
                if not self._grouping:
                    self._db.execute("ROLLBACK")
                raise
            if not (staged and self._grouping):
                self._db.execute("COMMIT")

    def commit(self) -> None:
        """Commit whatever is staged (nothing to do outside `group_commits()`)."""
        with self._lock:
            if self._db.in_transaction:
                self._db.execute("COMMIT")

    async def durable(self) -> None:
        """Return once every write made so far is committed. Inside `group_commits()` the callers of
        one event-loop turn share one commit, made at the start of the next turn."""
        if not self._grouping or not self._db.in_transaction:
            return
        if self._commit_due is None:
            loop = asyncio.get_running_loop()
            self._commit_due = loop.create_future()
            loop.call_soon(self._group_commit)
        await asyncio.shield(self._commit_due)

    def _group_commit(self) -> None:
        due, self._commit_due = self._commit_due, None
        try:
            self.commit()
        except Exception as exc:  # noqa: BLE001 - every waiter of this commit sees its failure
            due.set_exception(exc)
        else:
            due.set_result(None)

    @contextlib.asynccontextmanager
    async def group_commits(self, max_delay_s: float = 0.1) -> AsyncIterator[RunStore]:
        """Staged writes share commits while inside (see the module docstring); all committed on the way out."""
        self._grouping = True
        ticker = asyncio.create_task(self._commit_every(max_delay_s))
        try:
            yield self
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self._grouping = False
            self.commit()

    async def _commit_every(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            self.commit()

    # --- meta ------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # --- tasks -------------------------------------------------------------------------
    def put_tasks(self, tasks: list[dict[str, Any]]) -> None:
        self._write("INSERT OR REPLACE INTO tasks(id, position, body) VALUES (?, ?, ?)",
                    [(t["id"], i, json.dumps(t)) for i, t in enumerate(tasks)], many=True)

    # --- request cache (ResponseCache) ---------------------------------------------------
    def get_response(self, key: str) -> dict[str, Any] | None:
        """The stored reply of a request with this content key (a fresh run skips the look-up)."""
        if not self._replies_stored and key not in self._replied_keys:
            return None
        rows = self._read("SELECT result FROM reservations WHERE key = ? AND result IS NOT NULL LIMIT 1", (key,))
        return json.loads(rows[0][0]) if rows else None

    # --- ledger (LedgerBackend) -------------------------------------------------------
    def load_totals(self) -> Totals:
        """Totals of earlier sessions; reservations they left unsettled become orphaned."""
        with self._lock:
            self._db.execute("UPDATE reservations SET status = 'orphaned' WHERE status = 'reserved'")
            spent = self._db.execute(
                "SELECT COALESCE(SUM(usd), 0), COALESCE(SUM(prompt_tokens + completion_tokens), 0), COUNT(*) "
                "FROM reservations WHERE status = 'settled'").fetchone()
            orphaned = self._db.execute(
                "SELECT COALESCE(SUM(worst_usd), 0), COALESCE(SUM(worst_tokens), 0) "
                "FROM reservations WHERE status = 'orphaned'").fetchone()
        elapsed = float(self.get_meta("elapsed_s") or 0.0)
        return Totals(spent_usd=spent[0], spent_tokens=spent[1], requests=spent[2],
                      orphaned_usd=orphaned[0], orphaned_tokens=orphaned[1], elapsed_s=elapsed)

    def record_reservation(self, reservation: Reservation) -> None:
        """Staged inside `group_commits()`: the request may be sent once `durable()` returned."""
        self._write("INSERT INTO reservations(id, key, worst_usd, worst_tokens, status, created) "
                    "VALUES (?, ?, ?, ?, 'reserved', ?)",
                    (reservation.id, reservation.key, reservation.usd, reservation.tokens, time.time()), staged=True)

    def record_settlement(self, reservation: Reservation, usd: float, tokens: int,
                          payload: dict[str, Any] | None) -> None:
        payload = payload or {}
        result = payload.get("result")
        usage = (result or {}).get("usage", {})
        stored = json.dumps(result) if result is not None and payload.get("key") else None
        with self._lock:  # one statement: the cost and the reply land together or not at all
            self._write(
                "UPDATE reservations SET status = 'settled', usd = ?, prompt_tokens = ?, completion_tokens = ?, "
                "cached_tokens = ?, http_requests = ?, estimated = ?, error = ?, result = ?, settled = ? WHERE id = ?",
                (usd, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0),
                 usage.get("cached_prompt_tokens", 0), (result or {}).get("requests", 0),
                 int(bool(usage.get("estimated"))), payload.get("error"), stored, time.time(), reservation.id),
                staged=True)
            if stored is not None:
                self._replied_keys.add(reservation.key)

    def record_elapsed(self, elapsed_s: float) -> None:
        self.set_meta("elapsed_s", repr(elapsed_s))

    def ledger_summary(self) -> dict[str, Any]:
        """Cumulative request, token and money figures of the whole run (all sessions)."""
        row = self._read(
            "SELECT COUNT(*), COALESCE(SUM(http_requests), 0), COALESCE(SUM(prompt_tokens), 0), "
            "COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), COALESCE(SUM(usd), 0), "
            "COALESCE(SUM(estimated), 0) FROM reservations WHERE status = 'settled' AND error IS NULL")[0]
        failed = self._read("SELECT error, COUNT(*) FROM reservations WHERE status = 'settled' "
                            "AND error IS NOT NULL GROUP BY error")
        orphaned = self._read("SELECT COUNT(*), COALESCE(SUM(worst_usd), 0) FROM reservations "
                              "WHERE status = 'orphaned'")[0]
        return {"requests": row[0], "http_requests": row[1], "prompt_tokens": row[2], "completion_tokens": row[3],
                "cached_prompt_tokens": row[4], "cost_usd": row[5], "estimated_usage_requests": row[6],
                "failed_requests": dict(failed), "orphaned_requests": orphaned[0], "orphaned_usd": orphaned[1]}

    def orphaned_keys(self) -> list[str]:
        return [r[0] for r in self._read("SELECT key FROM reservations WHERE status = 'orphaned'")]

    # --- candidates --------------------------------------------------------------------
    def put_candidates(self, round_: int, candidates: list[Candidate]) -> None:
        """Insert or replace candidates (a retried failure replaces its error row) in one transaction; each
        distinct prompt is stored once (the `prompts` table), the candidate's body carries its `prompt_id`."""
        now = time.time()
        rows, prompts = [], []
        for c in candidates:
            pid, body = c.to_store()
            if pid not in self._prompt_ids:
                if len(self._prompt_ids) >= PROMPT_CACHE:  # bounded: INSERT OR IGNORE makes a forgotten id harmless
                    self._prompt_ids.clear()
                self._prompt_ids.add(pid)
                prompts.append((pid, json.dumps(c.prompt, ensure_ascii=False)))
            rows.append((c.task_id, round_, c.workflow, c.sample_index, c.error,
                         body[:-1] + f', "prompt_id": "{pid}"}}', now))
        with self._lock:
            if prompts:
                self._write("INSERT OR IGNORE INTO prompts(id, messages) VALUES (?, ?)", prompts, many=True,
                            staged=True)
            self._write("INSERT OR REPLACE INTO candidates(task_id, round, workflow, sample_index, error, "
                        "body, created) VALUES (?, ?, ?, ?, ?, ?, ?)", rows, many=True, staged=True)

    def ok_candidate_counts(self, round_: int, workflow: str) -> dict[str, int]:
        rows = self._read("SELECT task_id, COUNT(*) FROM candidates WHERE round = ? AND workflow = ? "
                          "AND error IS NULL GROUP BY task_id", (round_, workflow))
        return dict(rows)

    def task_candidates(self, round_: int, workflow: str, task_id: str) -> list[Candidate]:
        rows = self._read("SELECT body FROM candidates WHERE round = ? AND workflow = ? AND task_id = ? "
                          "ORDER BY sample_index", (round_, workflow, task_id))
        return [self._candidate(body) for (body,) in rows]

    def iter_candidates(self, round_: int | None = None, workflow: str | None = None) -> Iterator[Candidate]:
        """Candidates in round, task order, then workflow, then sample index (only `workflow`'s when given)."""
        where = [w for w, v in (("c.round = ?", round_), ("c.workflow = ?", workflow)) if v is not None]
        args = tuple(v for v in (round_, workflow) if v is not None)
        sql = ("SELECT c.body FROM candidates c LEFT JOIN tasks t ON t.id = c.task_id "
               + (f"WHERE {' AND '.join(where)} " if where else "")
               + "ORDER BY c.round, t.position, c.task_id, c.workflow, c.sample_index")
        for (body,) in self._read(sql, args):
            yield self._candidate(body)

    def candidate_task_ids(self, round_: int) -> list[str]:
        return [r[0] for r in self._read("SELECT DISTINCT task_id FROM candidates WHERE round = ?", (round_,))]

    def candidates_of_task(self, round_: int, task_id: str) -> list[Candidate]:
        """Every stored candidate of one task (all workflows), in `iter_candidates` order."""
        rows = self._read("SELECT body FROM candidates WHERE round = ? AND task_id = ? ORDER BY workflow, sample_index",
                          (round_, task_id))
        return [self._candidate(body) for (body,) in rows]

    def candidate_error_counts(self, round_: int | None = None) -> dict[str, int]:
        where = "WHERE error IS NOT NULL" + (" AND round = ?" if round_ is not None else "")
        rows = self._read(f"SELECT error, COUNT(*) FROM candidates {where} GROUP BY error",
                          (round_,) if round_ is not None else ())
        return dict(rows)

    # --- one task's sample range (streamed sampling at large K: counts, never every record) -------------
    def count_ok_candidates(self, round_: int, workflow: str, task_id: str, lo: int, hi: int) -> int:
        """Candidates without error of one task with lo <= sample_index < hi (a range scan of the key)."""
        return self._read("SELECT COUNT(*) FROM candidates WHERE task_id = ? AND round = ? AND workflow = ? "
                          "AND sample_index >= ? AND sample_index < ? AND error IS NULL",
                          (task_id, round_, workflow, lo, hi))[0][0]

    def count_verdicts(self, round_: int, workflow: str, task_id: str, verifier: str, lo: int, hi: int) -> int:
        """`verifier`'s verdicts of one task's candidates with lo <= sample_index < hi."""
        return self._read("SELECT COUNT(*) FROM verdicts WHERE task_id = ? AND round = ? AND workflow = ? "
                          "AND sample_index >= ? AND sample_index < ? AND verifier = ?",
                          (task_id, round_, workflow, lo, hi, verifier))[0][0]

    def count_passed(self, round_: int, workflow: str, task_id: str, verifier: str, lo: int, hi: int) -> int:
        """Candidates without error of one task in [lo, hi) that `verifier` passed (no verifier error)."""
        return self._read(
            "SELECT COUNT(*) FROM candidates c JOIN verdicts v ON v.task_id = c.task_id AND v.round = c.round "
            "AND v.workflow = c.workflow AND v.sample_index = c.sample_index AND v.verifier = ? "
            "WHERE c.task_id = ? AND c.round = ? AND c.workflow = ? AND c.sample_index >= ? AND c.sample_index < ? "
            "AND c.error IS NULL AND v.passed AND COALESCE(v.error, '') = ''",
            (verifier, task_id, round_, workflow, lo, hi))[0][0]

    def iter_task_range(self, round_: int, workflow: str, task_id: str, lo: int, hi: int,
                        chunk: int = 2048) -> Iterator[list[Candidate]]:
        """One task's candidates with lo <= sample_index < hi, in sample order, `chunk` at a time (streamed)."""
        at = lo
        while at < hi:
            rows = self._read("SELECT sample_index, body FROM candidates WHERE task_id = ? AND round = ? "
                              "AND workflow = ? AND sample_index >= ? AND sample_index < ? ORDER BY sample_index "
                              "LIMIT ?", (task_id, round_, workflow, at, hi, chunk))
            if not rows:
                return
            yield [self._candidate(body) for _, body in rows]
            at = rows[-1][0] + 1

    def iter_task_candidates(self, round_: int, task_id: str, chunk: int = 2048) -> Iterator[list[Candidate]]:
        """Every stored candidate of one task (all workflows), in `candidates_of_task` order, `chunk` at a time."""
        last: tuple[str, int] = ("", -1)
        while True:
            rows = self._read("SELECT workflow, sample_index, body FROM candidates WHERE round = ? AND task_id = ? "
                              "AND (workflow > ? OR (workflow = ? AND sample_index > ?)) "
                              "ORDER BY workflow, sample_index LIMIT ?",
                              (round_, task_id, last[0], last[0], last[1], chunk))
            if not rows:
                return
            yield [self._candidate(body) for _, _, body in rows]
            last = (rows[-1][0], rows[-1][1])

    def verdict_totals(self, round_: int, verifier: str) -> dict[str, Any]:
        """`verdict_counts` as SQL aggregates: the same figures in constant memory (a 1M-candidate round would
        otherwise bring 1M rows into Python)."""
        rows = self._read(
            "SELECT c.workflow, SUM(c.error IS NULL AND v.passed AND COALESCE(v.error, '') = ''), "
            "SUM(v.passed AND COALESCE(v.error, '') = ''), SUM(c.error IS NULL AND COALESCE(v.error, '') != '') "
            "FROM candidates c JOIN verdicts v ON v.task_id = c.task_id AND v.round = c.round "
            "AND v.workflow = c.workflow AND v.sample_index = c.sample_index AND v.verifier = ? WHERE c.round = ? "
            "GROUP BY c.workflow", (verifier, round_))
        return {"verified": sum(r[2] for r in rows), "verified_ok": {r[0]: r[1] for r in rows if r[1]},
                "errors_ok": sum(r[3] for r in rows)}

    # --- verdicts ----------------------------------------------------------------------
    def put_verdicts(self, round_: int, rows: list[tuple[Candidate, str, dict[str, Any]]]) -> None:
        """rows: (candidate, verifier name, verdict dict)."""
        values = [(c.task_id, round_, c.workflow, c.sample_index, name, int(bool(v["passed"])),
                   float(v["score"]), v.get("error"), json.dumps(v)) for c, name, v in rows]
        self._write("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values,
                    many=True, staged=True)

    def put_encoded_verdicts(self, round_: int, verifier: str,
                             rows: list[tuple[Candidate, bool, float, str | None, str]]) -> None:
        """rows: (candidate, passed, score, error, the verdict's JSON text): one verdict shared by many candidates
        (identical answers) is encoded once by the caller instead of once per candidate."""
        values = [(c.task_id, round_, c.workflow, c.sample_index, verifier, int(bool(passed)), float(score), error,
                   body) for c, passed, score, error, body in rows]
        self._write("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values,
                    many=True, staged=True)

    def verdicts_for(self, round_: int, verifier: str,
                     task_ids: set[str] | None = None) -> dict[tuple[str, str, int], dict[str, Any]]:
        """The round's verdicts by candidate key; with `task_ids`, only those tasks' (a batch of one task
        reads its own few rows by primary key instead of every verdict of the round)."""
        sql = "SELECT task_id, workflow, sample_index, body FROM verdicts WHERE round = ? AND verifier = ?"
        if task_ids is None or len(task_ids) > 64:
            rows = self._read(sql, (round_, verifier))
        else:
            by_task = sql + " AND task_id = ?"
            rows = [row for task_id in task_ids for row in self._read(by_task, (round_, verifier, task_id))]
        return {(t, w, i): json.loads(b) for t, w, i, b in rows if task_ids is None or t in task_ids}

    def verdict_counts(self, round_: int, verifier: str) -> dict[str, Any]:
        """Counts of one verifier's verdicts on the round's candidates, without decoding any verdict:
        `verified` (passed, no verifier error), `verified_ok` (the same among candidates without error,
        by workflow) and `errors_ok` (verifier errors among candidates without error)."""
        rows = self._read(
            "SELECT c.workflow, c.error IS NULL, v.passed AND COALESCE(v.error, '') = '', COALESCE(v.error, '') != '' "
            "FROM candidates c JOIN verdicts v ON v.task_id = c.task_id AND v.round = c.round "
            "AND v.workflow = c.workflow AND v.sample_index = c.sample_index AND v.verifier = ? WHERE c.round = ?",
            (verifier, round_))
        verified_ok: dict[str, int] = {}
        for workflow, ok, passed, _ in rows:
            if ok and passed:
                verified_ok[workflow] = verified_ok.get(workflow, 0) + 1
        return {"verified": sum(1 for r in rows if r[2]), "verified_ok": verified_ok,
                "errors_ok": sum(1 for r in rows if r[1] and r[3])}

    # --- rounds --------------------------------------------------------------------------
    def put_round(self, round_: int, phase: str, body: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO rounds(round, phase, body, updated) VALUES (?, ?, ?, ?)",
                    (round_, phase, json.dumps(body), time.time()))

    def get_rounds(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT round, phase, body FROM rounds ORDER BY round")
        return [{"round": r, "phase": p, **json.loads(b)} for r, p, b in rows]


def _take_dir_lock(run_dir: Path):
    """An exclusive, non-blocking lock on DIR/.lock; released by the OS if the process dies."""
    handle = open(run_dir / ".lock", "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise UserError(f"{run_dir} is in use by another selfplay process (lock {run_dir / '.lock'}); "
                        f"wait for it to finish or choose another --out") from None
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


class RunReader(StoreReads):
    """A read-only view of a run directory's store: exports and reports read it beside a running job (no lock, no
    writes), streaming rows so memory does not grow with the number of candidates."""

    def __init__(self, run_dir: str | Path) -> None:
        db = Path(run_dir) / DB_NAME
        if not db.is_file():
            raise UserError(f"{run_dir}: no run store ({DB_NAME}); pass a directory written by `selfplay generate` "
                            "or `selfplay run`")
        self._db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False)
        self._lock = threading.RLock()
        self._prompts: dict[str, list[dict[str, Any]]] = {}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "RunReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def task_bodies(self) -> dict[str, dict[str, Any]]:
        """The run's tasks as they were stored (id -> {"id", "prompt", "answer", ...}), for exports."""
        return {task_id: json.loads(body) for task_id, body in self._read("SELECT id, body FROM tasks ORDER BY position")}

    def iter_candidates_with_verdicts(self, round_: int | None = None
                                      ) -> Iterator[tuple[Candidate, dict[str, dict[str, Any]]]]:
        """(candidate, its verdicts by verifier name), in `RunStore.iter_candidates` order, streamed."""
        where = "WHERE c.round = ? " if round_ is not None else ""
        sql = ("SELECT c.body, (SELECT json_group_object(v.verifier, json(v.body)) FROM verdicts v "
               "WHERE v.task_id = c.task_id AND v.round = c.round AND v.workflow = c.workflow "
               "AND v.sample_index = c.sample_index) FROM candidates c LEFT JOIN tasks t ON t.id = c.task_id "
               + where + "ORDER BY c.round, t.position, c.task_id, c.workflow, c.sample_index")
        cursor = self._db.execute(sql, (round_,) if round_ is not None else ())
        while batch := cursor.fetchmany(512):
            for body, verdicts in batch:
                yield self._candidate(body), json.loads(verdicts) if verdicts else {}
