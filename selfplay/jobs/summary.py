"""The summary of a generate job (`DIR/summary.json`): requests, tokens, money, errors, yield, per workflow.

What it is for: one JSON object a script can read after a job: cumulative figures of the whole run
from the run store (all sessions of a resumed job), this session's cache hits and retried attempts,
how it stopped, and what a verified candidate cost per workflow.
What it does not do: print or decide anything; the CLI prints a digest.
"""

from __future__ import annotations

from typing import Any

from agents.workflows.adaptive import samples_per_solved
from agents.workflows.dedup import dedup_report
from agents.workflows.stats import workflow_stats
from agents.llm.types import Usage
from agents.workflows.trajectory import Trajectory


def generate_summary(config: Any, store: Any, llm: Any, ledger: Any, backend: Any, state: Any, round_: int,
                     session_s: float, price_version: str) -> dict[str, Any]:
    money = store.ledger_summary()
    records = list(store.iter_candidates(round_))
    trajectories = [_trajectory(r) for r in records]
    verifier = config.generate.verifier
    verdicts = store.verdicts_for(round_, verifier) if verifier else {}
    passed = [_passed(verdicts, r) if verifier else None for r in records]
    ok = [r for r in records if r.get("error") is None]
    verified = sum(1 for p in passed if p)
    return {
        **money,
        "cache_hits": llm.cache_hits,
        "errors": store.candidate_error_counts(round_),
        "retried_attempts": dict(getattr(backend, "attempt_errors", {})),
        "candidates": len(ok),
        "verified": verified if verifier else None,
        "yield": (verified / len(ok) if ok else None) if verifier else None,
        "usd_per_verified": (money["cost_usd"] / verified if verified else None) if verifier else None,
        "verifier_errors": sum(1 for r in ok if verdicts.get(_key(r), {}).get("error")) if verifier else None,
        "samples_per_solved_task": (samples_per_solved((o.sampled, o.passed) for o in state.outcomes)
                                    if verifier else None),
        "per_workflow": {name: s.model_dump(mode="json") for name, s in workflow_stats(trajectories, passed).items()},
        "dedup": dedup_report(trajectories).model_dump(mode="json"),
        "tasks": state.total_tasks,
        "tasks_complete": state.done_tasks,
        "wall_s": round(ledger.elapsed_s, 3),
        "session_wall_s": round(session_s, 3),
        "stopped_reason": state.stopped_reason,
        "budget_cap": ledger.refusal.cap if ledger.refusal else None,
        "caps": config.budget.model_dump(),
        "usd_per_candidate": money["cost_usd"] / len(ok) if ok else None,
        "usd_per_1k_completion_tokens": (money["cost_usd"] / money["completion_tokens"] * 1000
                                         if money["completion_tokens"] else None),
        "model": config.model.name,
        "workflow": config.generate.workflow,
        "price_table": price_version,
    }


class _StoredTrajectory:
    """A read-only view of a stored candidate with the attributes the summary's statistics read.

    Building real `Trajectory` models for every candidate of a large job costs more than the rest of
    the summary; the store wrote validated data, so a thin view is enough.
    """

    __slots__ = ("_r", "usage")

    def __init__(self, record: dict[str, Any]) -> None:
        self._r = record
        self.usage = Usage.model_construct(**record.get("usage", {}))

    def __getattr__(self, name: str) -> Any:
        try:
            return self._r[name]
        except KeyError:
            return Trajectory.model_fields[name].get_default(call_default_factory=True)

    @property
    def completion_messages(self) -> list:
        return self._r["messages"][self._r.get("prompt_messages", 1):]


def _trajectory(record: dict[str, Any]) -> Any:
    return _StoredTrajectory(record)


def _key(record: dict[str, Any]) -> tuple[str, str, int]:
    return record["task_id"], record["workflow"], record["sample_index"]


def _passed(verdicts: dict, record: dict[str, Any]) -> bool | None:
    verdict = verdicts.get(_key(record))
    if verdict is None or verdict.get("error"):
        return None
    return bool(verdict["passed"])
