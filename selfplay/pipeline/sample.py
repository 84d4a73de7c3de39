"""The one sampler of the engine: batches of a workflow per task, stored, verified, until adaptive K says stop.

What it is for: every job that samples candidates (`selfplay generate`, each round of `selfplay run`
through `phases.sample_chunked`, `selfplay prm-label`). For one task it replays a deterministic
sequence of batches: the first K samples, then (with a verifier and `k_max` / `stop_after_verified`)
more batches chosen by `agents.workflows.adaptive.next_batch` from the counts so far.
`run(task)` samples one task (the generate job's workers call it concurrently); `run_group(tasks)`
samples a group in lock-step waves: wave w draws the next batch of every task of the group that
still wants one, all at once, and stores the wave in ONE write. A wave already stored whole is
reused; otherwise the whole wave is drawn again, which costs only the requests that were not paid
(the rest are cache hits) and, with the local backend (no cache; the group's requests form one
batch), recomputes every batch with the same shapes as an uninterrupted run, so a resumed loop
equals an uninterrupted one (exactly for `direct`; the later turns of multi-turn workflows batch as they
arrive, so there the samples match up to the float noise of batch shapes, as between two uninterrupted
runs). Every wave is stored, and verified, before the next one is planned.
Records carry the sampled token ids of the last assistant turn (`completion_token_ids`) and their
sampling log-probs (`completion_logprobs`) when the backend returned them (see
`agents.workflows.trajectory`).
What it does not do: schedule tasks across workers, choose the chunking (the caller), or stop the job
(it reports a budget refusal).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable

from agents.llm.types import SamplingParams
from agents.workflows.adaptive import AdaptiveK, next_batch
from agents.workflows.common import CheckResult
from agents.workflows.registry import budget_exhausted, run_workflow
from selfplay.core.store import RunStore
from selfplay.tasks.task import Task
from selfplay.pipeline.verify import get_check, run_check, verify_candidates


@dataclass
class TaskOutcome:
    task_id: str
    sampled: int = 0
    passed: int = 0
    new_candidates: int = 0
    budget_refused: bool = False
    records: list[dict[str, Any]] = field(default_factory=list)  # the batches sampled or reused, in order
    stored: list[dict[str, Any]] = field(default_factory=list)   # every stored candidate of the task, by index


def adaptive_settings(gen: Any) -> AdaptiveK:
    """`AdaptiveK` from any sampling section (generate's, the loop's); fixed K where it has no adaptive keys."""
    return AdaptiveK(k=gen.k, k_max=getattr(gen, "k_max", None),
                     stop_after_verified=getattr(gen, "stop_after_verified", None),
                     batch=getattr(gen, "batch", None), low_pass_rate=getattr(gen, "low_pass_rate", None) or 0.5)


def is_adaptive(gen: Any) -> bool:
    return bool(getattr(gen, "k_max", None) or getattr(gen, "stop_after_verified", None))


def seeded_params(gen: Any, seed_of: Callable[[str], int | None]) -> Callable[[Task], SamplingParams]:
    """The generate job's per-task sampling parameters: the section's settings, the task's own seed."""
    def params_for(task: Task) -> SamplingParams:
        return SamplingParams(max_tokens=gen.max_tokens, temperature=gen.temperature, top_p=gen.top_p,
                              stop=gen.stop or None, seed=seed_of(task.id) if seed_of else None)
    return params_for


class TaskSampler:
    """Samples tasks with `gen` (a sampling section: workflow, k, options, verifier, adaptive K keys).

    `label`: the workflow name records are filed under (the loop files eval samples under "eval"; the
    workflow that made them is kept as `generator`); None: the workflow itself (no `generator` key).
    `params_for(task)`: the request parameters (default: the section's, seeded by `seed_of(task_id)`).
    `check_for(task)`: the `feedback` workflow's check (default: the configured verifier).
    `verify`: verify each wave as it lands (default: when a verifier is set); adaptive K needs it.
    `replay`: look stored candidates up even when the store held none at open (a job that samples the
    same label twice in one process); the generate job skips the look-up on a fresh run.
    """

    def __init__(self, gen: Any, llm: Any, store: RunStore, round_: int, *, executor: Executor | None,
                 critic_llm: Any = None, tool: Any = None, seed_of=None, check: Any = None, label: str | None = None,
                 params_for: Callable[[Task], SamplingParams] | None = None,
                 check_for: Callable[[Task], Any] | None = None, verify: bool | None = None,
                 replay: bool = False) -> None:
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
        self.label = label
        self.params_for = params_for or seeded_params(gen, seed_of)
        self.check_for = check_for or self._check_for
        self.verify = gen.verifier is not None if verify is None else verify
        self.replay = replay

    @property
    def stored_as(self) -> str:
        return self.label or self.gen.workflow

    def plan(self, sampled: int, passed: int) -> int:
        if not self.verify:  # nothing to adapt on: fixed K
            return max(0, self.gen.k - sampled)
        return next_batch(sampled, passed, self.adaptive)

    async def run(self, task: Task) -> TaskOutcome:
        return (await self.run_group([task]))[0]

    async def run_group(self, tasks: list[Task], *, on_wave: Callable[[], None] | None = None) -> list[TaskOutcome]:
        """Every task of the group sampled to the end, in lock-step waves (`on_wave()` after each stored wave)."""
        stored = {t.id: self._stored(t) for t in tasks}
        outcomes = [TaskOutcome(t.id) for t in tasks]
        while wave := [(task, out, n) for task, out in zip(tasks, outcomes)
                       if not out.budget_refused and (n := self.plan(out.sampled, out.passed)) > 0]:
            batches = [[stored[t.id].get(i) for i in range(out.sampled, out.sampled + n)] for t, out, n in wave]
            if not all(_whole(batch) for batch in batches):
                batches = await self._draw_wave(wave, batches, stored)
                if on_wave:
                    on_wave()
            live = [(w, batch) for w, batch in zip(wave, batches) if not w[1].budget_refused]
            passed = await self._count_passed([task for (task, _, _), _ in live], [b for _, b in live])
            for ((_, out, n), batch), count in zip(live, passed):
                out.records.extend(batch)
                out.passed += count
                out.sampled += n
        for task, out in zip(tasks, outcomes):
            out.stored = [stored[task.id][i] for i in sorted(stored[task.id])]
        return outcomes

    async def _draw_wave(self, wave: list, batches: list[list], stored: dict[str, dict[int, dict[str, Any]]]
                         ) -> list[list[dict[str, Any]]]:
        """Draw every batch of the wave (the whole ones again too: same batch shapes), store them in one write."""
        drawn = await asyncio.gather(*(self._draw(t, out.sampled, n) for t, out, n in wave))
        records = [r for batch, _ in drawn for r in batch]
        if records:
            self.store.put_candidates(self.round, records)
        for (task, out, _), (batch, refused), before in zip(wave, drawn, batches):
            stored[task.id].update((c["sample_index"], c) for c in batch)
            out.budget_refused = refused
            if not refused and not _whole(before):
                out.new_candidates += sum(1 for c in batch if c.get("error") is None)
        return [batch for batch, _ in drawn]

    def _stored(self, task: Task) -> dict[int, dict[str, Any]]:
        if not (self.replay or self.store.had_candidates):  # a fresh run has nothing to replay: skip the look-up
            return {}
        return {c["sample_index"]: c for c in self.store.task_candidates(self.round, self.stored_as, task.id)}

    async def _draw(self, task: Task, first: int, n: int) -> tuple[list[dict[str, Any]], bool]:
        """The batch's records (not yet stored), and whether the budget refused one of its requests."""
        trajectories = await run_workflow(
            self.gen.workflow, self.llm, task.id, task.messages(self.gen.system_prompt), self.params_for(task), n,
            options=self.gen.workflow_options, check=self.check_for(task), tool=self.tool,
            first_index=first, critic_llm=self.critic_llm)
        kept = [t for t in trajectories if t.error != "budget"]
        return [candidate_record(t, task, self.round, self.label) for t in kept], budget_exhausted(trajectories)

    async def _count_passed(self, tasks: list[Task], batches: list[list[dict[str, Any]]]) -> list[int]:
        """Passed candidates per batch: one verification call for the whole wave."""
        if not self.verify or not tasks:
            return [0] * len(tasks)
        records = [c for batch in batches for c in batch]
        verdicts = await verify_candidates(self.store, self.round, records, {t.id: t for t in tasks}, self.gen.verifier,
                                           concurrency=self.gen.verify_concurrency, executor=self.executor,
                                           check=self.check)
        return [sum(1 for c in batch if verdicts.get((c["task_id"], c["workflow"], c["sample_index"]), {}).get("passed"))
                for batch in batches]

    def _check_for(self, task: Task):
        """The `feedback` workflow's check: the configured verifier against this task's reference."""
        if self.gen.verifier is None:
            return None
        check = get_check(self.gen.verifier, self.check)

        async def feedback_check(answer: str) -> CheckResult:
            verdict = await run_check(check, {"final_answer": answer}, task, self.executor)
            return CheckResult(passed=verdict.passed, reason=verdict.reason, error=verdict.error)

        return feedback_check


def sandbox_tool(executor: Executor | None) -> Callable[[str], Any]:
    """The `tool_use` workflow's tool in both jobs: the code sandbox (`verifiers.code.run_python`) on `executor`."""
    from verifiers.code import run_python

    async def run_code(code: str):
        return await asyncio.get_running_loop().run_in_executor(executor, lambda: run_python(code, timeout=10.0))
    return run_code


def _whole(batch: list[dict[str, Any] | None]) -> bool:
    """A stored batch that needs no request: every sample there and without error."""
    return all(c is not None and c.get("error") is None for c in batch)


def candidate_record(trajectory: Any, task: Task, round_: int, label: str | None = None) -> dict[str, Any]:
    """The stored candidate: the trajectory, its round and task kind; filed under `label` when given."""
    record = trajectory.model_dump(mode="json")
    record["round"] = round_
    record["task_kind"] = task.kind
    if label is not None:
        record.update(generator=record["workflow"], workflow=label)
    return record
