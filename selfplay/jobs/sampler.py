"""Per-task sampling: batches of a workflow, verified as they land, until adaptive K says stop.

What it is for: the inner loop of `selfplay generate` (and of each round of `selfplay run`). For one
task it replays a deterministic sequence of batches: the first K samples, then (with a verifier and
`k_max` / `stop_after_verified`) more batches chosen by `agents.workflows.adaptive.next_batch` from
the counts so far. A batch already stored whole is reused; an incomplete one is run again, which
costs only the requests that were not paid (the rest are cache hits). Every batch is stored, and
verified, before the next one is planned.
What it does not do: schedule tasks across workers, or stop the job (it reports a budget refusal).
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from agents.llm.types import SamplingParams
from agents.workflows.adaptive import AdaptiveK, next_batch
from agents.workflows.common import CheckResult
from agents.workflows.registry import budget_exhausted, run_workflow
from selfplay.config import GenerateSection
from selfplay.store import RunStore
from selfplay.tasks import Task
from selfplay.verify import get_check, run_check, verify_candidates


@dataclass
class TaskOutcome:
    task_id: str
    sampled: int = 0
    passed: int = 0
    new_candidates: int = 0
    budget_refused: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)  # the batches sampled or reused, in order
    stored: list[dict[str, Any]] = field(default_factory=list)   # every stored candidate of the task, by index


def adaptive_settings(gen: GenerateSection) -> AdaptiveK:
    return AdaptiveK(k=gen.k, k_max=gen.k_max, stop_after_verified=gen.stop_after_verified, batch=gen.batch,
                     low_pass_rate=gen.low_pass_rate)


class TaskSampler:
    def __init__(self, gen: GenerateSection, llm: Any, store: RunStore, round_: int, *, executor: Executor,
                 critic_llm: Any = None, tool: Any = None, seed_of=None, check: Any = None) -> None:
        self.gen = gen
        self.llm = llm
        self.store = store
        self.round = round_
        self.executor = executor
        self.critic_llm = critic_llm
        self.tool = tool
        self.adaptive = adaptive_settings(gen)
        self.seed_of = seed_of
        self.check = check  # a judge / PRM check built by the job; None: the named rule-based verifier

    def plan(self, sampled: int, passed: int) -> int:
        if self.gen.verifier is None:  # nothing to adapt on: fixed K
            return max(0, self.gen.k - sampled)
        return next_batch(sampled, passed, self.adaptive)

    async def run(self, task: Task) -> TaskOutcome:
        stored = ({c["sample_index"]: c for c in self.store.task_candidates(self.round, self.gen.workflow, task.id)}
                  if self.store.had_candidates else {})  # a fresh run has nothing to replay: skip the look-up
        outcome = TaskOutcome(task.id)
        while (n := self.plan(outcome.sampled, outcome.passed)) > 0:
            indices = range(outcome.sampled, outcome.sampled + n)
            batch = [stored.get(i) for i in indices]
            if not all(c is not None and c.get("error") is None for c in batch):
                batch, refused = await self._draw(task, outcome.sampled, n)
                stored.update((c["sample_index"], c) for c in batch)
                if refused:
                    outcome.budget_refused = True
                    break
                outcome.new_candidates += sum(1 for c in batch if c.get("error") is None)
            outcome.records.extend(batch)
            outcome.passed += await self._count_passed(task, batch)
            outcome.sampled += n
        outcome.stored = [stored[i] for i in sorted(stored)]
        return outcome

    async def _draw(self, task: Task, first: int, n: int) -> tuple[list[dict[str, Any]], bool]:
        """The batch's records as stored, and whether the budget refused one of its requests."""
        params = SamplingParams(max_tokens=self.gen.max_tokens, temperature=self.gen.temperature, top_p=self.gen.top_p,
                                stop=self.gen.stop or None, seed=self.seed_of(task.id))
        trajectories = await run_workflow(
            self.gen.workflow, self.llm, task.id, task.messages(self.gen.system_prompt), params, n,
            options=self.gen.workflow_options, check=self._check_for(task), tool=self.tool,
            first_index=first, critic_llm=self.critic_llm)
        kept = [t for t in trajectories if t.error != "budget"]
        records = [candidate_record(t, task, self.round) for t in kept]
        if records:
            self.store.put_candidates(self.round, records)
        return records, budget_exhausted(trajectories)

    async def _count_passed(self, task: Task, batch: list[dict[str, Any]]) -> int:
        if self.gen.verifier is None:
            return 0
        verdicts = await verify_candidates(self.store, self.round, batch, {task.id: task}, self.gen.verifier,
                                           concurrency=self.gen.verify_concurrency, executor=self.executor,
                                           check=self.check)
        return sum(1 for c in batch if verdicts.get((c["task_id"], c["workflow"], c["sample_index"]), {}).get("passed"))

    def _check_for(self, task: Task):
        """The `feedback` workflow's check: the configured verifier against this task's reference."""
        if self.gen.verifier is None:
            return None
        check = get_check(self.gen.verifier, self.check)

        async def feedback_check(answer: str) -> CheckResult:
            verdict = await run_check(check, {"final_answer": answer}, task, self.executor)
            return CheckResult(passed=verdict.passed, reason=verdict.reason, error=verdict.error)

        return feedback_check


def candidate_record(trajectory: Any, task: Task, round_: int) -> dict[str, Any]:
    record = trajectory.model_dump(mode="json")
    record["round"] = round_
    record["task_kind"] = task.kind
    return record
