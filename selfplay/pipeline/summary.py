"""The summary of a generate job (`DIR/summary.json`): requests, tokens, money, errors, yield, per workflow.

What it is for: one JSON object a script can read after a job: cumulative figures of the whole run
(all sessions of a resumed job), this session's cache hits and retried attempts, how it stopped, and
what a verified candidate cost per workflow. Money, error and verdict counts are SQL aggregates of
the run store. The per-candidate figures (per-workflow sums, dedup counts) are tallied task by task
while the job runs (`CandidateTally`: each task's stored candidates, once the task is done), so the
end of a job reads no candidate back; a resumed job that stopped before reaching some task tallies
that task's stored candidates from the store.
Errors are counted three ways, each under its own name: `errors`, the samples that failed for good in THIS
session (by kind); `errors_all_sessions`, the same summed over every session of the run (kept in the store's
meta table, `add_session_errors`); `errors_unresolved`, the samples still stored with an error (the next resume
draws them again). A clean resume therefore reports `errors` = {} and `errors_unresolved` = {}, while
`errors_all_sessions` remembers the connection errors of the session whose server died.
What it does not do: print or decide anything; the CLI prints a digest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from agents.workflows.dedup import DedupReport, _whole_text, answer_key, near_duplicates
from agents.workflows.stats import add_to_sums, stats_from_sums
from selfplay.core.candidate import Candidate
from selfplay.pipeline.metrics import k_curve


NEAR_LIMIT = 4096     # near-duplicates are counted among each task's first this many candidates (O(K x clusters))
DISTINCT_LIMIT = 200_000  # distinct answers remembered per task; beyond, each further answer counts as new
ERRORS_META = "errors_all_sessions"  # the run store's meta key of failed samples by kind, summed over sessions


def add_session_errors(store: Any, errors: dict[str, int]) -> None:
    """Add failed samples (by kind) to the run's count over all sessions (one small committed write)."""
    if not errors:
        return
    totals = all_session_errors(store)
    for kind, count in errors.items():
        totals[kind] = totals.get(kind, 0) + count
    store.set_meta(ERRORS_META, json.dumps(totals, sort_keys=True))


def all_session_errors(store: Any) -> dict[str, int]:
    """Failed samples by kind over every session of the run (what `add_session_errors` recorded)."""
    return dict(json.loads(store.get_meta(ERRORS_META) or "{}"))


class TaskTally:
    """One task's running figures, fed piece by piece as its candidates land (a streamed task keeps no records):
    per-workflow sums, distinct answers (`agents.workflows.dedup`'s exact key) and near-duplicates."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.sums: dict[str, dict[str, float]] = {}
        self.ok = 0
        self.keys: set[str] = set()
        self.unique = 0
        self.texts: list[str] = []
        self._keys_of: dict[str, str] = {}

    def add(self, records: Iterable[Candidate]) -> None:
        views = list(records)
        add_to_sums(self.sums, views, [None] * len(views))
        for c in views:
            if not c.ok:
                continue
            self.ok += 1
            key = self._key(c.final_answer)
            if key not in self.keys:
                self.unique += 1
                if len(self.keys) < DISTINCT_LIMIT:
                    self.keys.add(key)
            if len(self.texts) < NEAR_LIMIT:
                self.texts.append(_whole_text(c))

    def _key(self, text: str) -> str:
        """The exact-mode answer key of `text`, remembered per text (a task's K answers are mostly repeats)."""
        key = self._keys_of.get(text)
        if key is None:
            key = answer_key(self.task_id, text)[:32]
            if len(self._keys_of) < 4096:
                self._keys_of[text] = key
        return key

    def dedup(self) -> dict[str, int]:
        return {"candidates": self.ok, "unique_answers": self.unique, "exact_duplicates": self.ok - self.unique,
                "near_duplicates": near_duplicates(self.texts)}


class CandidateTally:
    """Running per-workflow sums and dedup counts of stored candidates, one whole task at a time."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, float]] = {}
        self.dedup = {name: 0 for name in DedupReport.model_fields}
        self.tasks: set[str] = set()

    def add_task(self, task_id: str, records: Iterable[Candidate]) -> None:
        """All stored candidates of one task (in sample order); a task is tallied once."""
        tally = TaskTally(task_id)
        tally.add(records)
        self.add_tally(tally)

    def add_tally(self, tally: TaskTally) -> None:
        """A task's figures (a `TaskTally` fed with all its stored candidates); a task is tallied once."""
        if tally.task_id in self.tasks:
            raise ValueError(f"task {tally.task_id!r} is tallied already")
        self.tasks.add(tally.task_id)
        for name, acc in tally.sums.items():
            mine = self.sums.setdefault(name, dict.fromkeys(acc, 0))
            for key, value in acc.items():
                mine[key] += value
        for name, value in tally.dedup().items():
            self.dedup[name] += value

    def add_untallied(self, store: Any, round_: int) -> None:
        """Tasks with stored candidates that this session never reached (a resumed job that stopped early),
        streamed from the store a chunk at a time."""
        for task_id in store.candidate_task_ids(round_):
            if task_id not in self.tasks:
                tally = TaskTally(task_id)
                for chunk in store.iter_task_candidates(round_, task_id):
                    tally.add(chunk)
                self.add_tally(tally)


def generate_summary(config: Any, store: Any, llm: Any, ledger: Any, backend: Any, state: Any, round_: int,
                     session_s: float, price_version: str) -> dict[str, Any]:
    money = store.ledger_summary()
    tally: CandidateTally = state.tally
    if store.had_candidates:
        tally.add_untallied(store, round_)
    verifier = config.generate.verifier
    verdicts = store.verdict_totals(round_, verifier) if verifier else None  # aggregates: constant memory
    per_workflow = stats_from_sums(tally.sums)
    for name, stats in per_workflow.items():
        stats.verified = verdicts["verified_ok"].get(name, 0) if verdicts else 0
    ok = tally.dedup["candidates"]
    verified = verdicts["verified"] if verdicts else None
    return {
        **money,
        "cache_hits": llm.cache_hits,
        "errors": dict(state.errors),  # this session's failed samples; see the module docstring for the others
        "errors_all_sessions": all_session_errors(store),
        "errors_unresolved": store.candidate_error_counts(round_),
        "session_requests": money["requests"] - state.requests_before,
        "retried_attempts": dict(getattr(backend, "attempt_errors", {})),
        "candidates": ok,
        "verified": verified,
        "yield": (verified / ok if ok else None) if verifier else None,
        "usd_per_verified": (money["cost_usd"] / verified if verified else None) if verifier else None,
        "verifier_errors": verdicts["errors_ok"] if verifier else None,
        "samples_per_solved_task": (state.sampled / state.solved if state.solved else None) if verifier else None,
        "per_workflow": {name: s.model_dump(mode="json") for name, s in per_workflow.items()},
        "dedup": dict(tally.dedup),
        "tasks": state.total_tasks,
        "tasks_complete": state.done_tasks,
        "wall_s": round(ledger.elapsed_s, 3),
        "session_wall_s": round(session_s, 3),
        "stopped_reason": state.stopped_reason,
        "endpoint_lost": state.endpoint_lost,  # the message of a job whose model server went away (else None)
        "budget_cap": ledger.refusal.cap if ledger.refusal else None,
        "budget_stop": ledger.refusal.message if ledger.refusal else None,  # spent, committed, the next need
        "budget_waits": ledger.waits,  # requests that waited for in-flight settlements before they fit
        "caps": config.budget.model_dump(),
        "usd_per_candidate": money["cost_usd"] / ok if ok else None,
        "usd_per_1k_completion_tokens": (money["cost_usd"] / money["completion_tokens"] * 1000
                                         if money["completion_tokens"] else None),
        "model": config.model.name,
        "workflow": config.generate.workflow,
        "price_table": price_version,
        "curve": k_curve(store.answer_classes(round_, verifier), store.task_sample_costs(round_)) if verifier else None,
    }
