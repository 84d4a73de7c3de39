"""The summary of a generate job (`DIR/summary.json`): requests, tokens, money, errors, yield, per workflow.

What it is for: one JSON object a script can read after a job: cumulative figures of the whole run
(all sessions of a resumed job), this session's cache hits and retried attempts, how it stopped, and
what a verified candidate cost per workflow. Money, error and verdict counts are SQL aggregates of
the run store. The per-candidate figures (per-workflow sums, dedup counts) are tallied task by task
while the job runs (`CandidateTally`: each task's stored candidates, once the task is done), so the
end of a job reads no candidate back; a resumed job that stopped before reaching some task tallies
that task's stored candidates from the store.
What it does not do: print or decide anything; the CLI prints a digest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agents.workflows.adaptive import samples_per_solved
from agents.workflows.dedup import DedupReport, dedup_report
from agents.workflows.stats import add_to_sums, stats_from_sums
from selfplay.core.candidate import Candidate


class CandidateTally:
    """Running per-workflow sums and dedup counts of stored candidates, one whole task at a time."""

    def __init__(self) -> None:
        self.sums: dict[str, dict[str, float]] = {}
        self.dedup = {name: 0 for name in DedupReport.model_fields}
        self.tasks: set[str] = set()

    def add_task(self, task_id: str, records: Iterable[Candidate]) -> None:
        """All stored candidates of one task (in sample order); a task is tallied once."""
        if task_id in self.tasks:
            raise ValueError(f"task {task_id!r} is tallied already")
        self.tasks.add(task_id)
        views = list(records)
        add_to_sums(self.sums, views, [None] * len(views))
        for name, value in dedup_report(views):
            self.dedup[name] += value

    def add_untallied(self, store: Any, round_: int) -> None:
        """Tasks with stored candidates that this session never reached (a resumed job that stopped early)."""
        for task_id in store.candidate_task_ids(round_):
            if task_id not in self.tasks:
                self.add_task(task_id, store.candidates_of_task(round_, task_id))


def generate_summary(config: Any, store: Any, llm: Any, ledger: Any, backend: Any, state: Any, round_: int,
                     session_s: float, price_version: str) -> dict[str, Any]:
    money = store.ledger_summary()
    tally: CandidateTally = state.tally
    if store.had_candidates:
        tally.add_untallied(store, round_)
    verifier = config.generate.verifier
    verdicts = store.verdict_counts(round_, verifier) if verifier else None
    per_workflow = stats_from_sums(tally.sums)
    for name, stats in per_workflow.items():
        stats.verified = verdicts["verified_ok"].get(name, 0) if verdicts else 0
    ok = tally.dedup["candidates"]
    verified = verdicts["verified"] if verdicts else None
    return {
        **money,
        "cache_hits": llm.cache_hits,
        "errors": store.candidate_error_counts(round_),
        "retried_attempts": dict(getattr(backend, "attempt_errors", {})),
        "candidates": ok,
        "verified": verified,
        "yield": (verified / ok if ok else None) if verifier else None,
        "usd_per_verified": (money["cost_usd"] / verified if verified else None) if verifier else None,
        "verifier_errors": verdicts["errors_ok"] if verifier else None,
        "samples_per_solved_task": (samples_per_solved((o.sampled, o.passed) for o in state.outcomes)
                                    if verifier else None),
        "per_workflow": {name: s.model_dump(mode="json") for name, s in per_workflow.items()},
        "dedup": dict(tally.dedup),
        "tasks": state.total_tasks,
        "tasks_complete": state.done_tasks,
        "wall_s": round(ledger.elapsed_s, 3),
        "session_wall_s": round(session_s, 3),
        "stopped_reason": state.stopped_reason,
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
    }
