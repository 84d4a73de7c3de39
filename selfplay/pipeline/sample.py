"""The one sampler of the engine: batches of a workflow per task, stored, verified, until adaptive K says stop.

What it is for: every job that samples candidates (`selfplay generate`, each round of `selfplay run`
through `sample_tasks`, `selfplay prm-label`). For one task it replays a deterministic
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
With `segment` set (the generate job), `run(task)` streams the task instead (`selfplay.pipeline.stream`): any K
in constant memory, replies stored and verified as they land, the outcome holding counts and a tally, no records.
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
from selfplay.core.candidate import Candidate
from selfplay.core.crashpoints import crash_point
from selfplay.core.store import RunStore
from selfplay.tasks.task import Task
from selfplay.pipeline.stream import TaskOutcome, stream_task
from selfplay.pipeline.verify import answer_only, get_check, run_check, verify_candidates


@dataclass(frozen=True)
class SamplingSpec:
    """What the sampler draws for each task: the workflow, K (or adaptive K) and the verifier of adaptive K."""

    workflow: str
    k: int
    system_prompt: str | None = None
    workflow_options: dict[str, Any] = field(default_factory=dict)
    verifier: str | None = None
    verify_concurrency: int = 2
    k_max: int | None = None
    stop_after_verified: int | None = None
    batch: int | None = None
    low_pass_rate: float = 0.5

    @classmethod
    def of(cls, section: Any, *, adaptive: bool = True) -> "SamplingSpec":
        """The spec of a config's sampling section (its adaptive K keys when `adaptive` and it sets them)."""
        values = {k: getattr(section, k) for k in ("workflow", "k", "system_prompt", "workflow_options", "verifier",
                                                   "verify_concurrency")}
        if adaptive and is_adaptive(section):
            values.update({k: getattr(section, k) for k in ADAPTIVE_KEYS})
        return cls(**values)


ADAPTIVE_KEYS = ("k_max", "stop_after_verified", "batch", "low_pass_rate")
EVAL = "eval"  # the label held-out evaluation samples are filed under (never trained on, never exported)


def chunks(items: list[Task], size: int) -> list[list[Task]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def sample_tasks(llm: Any, store: RunStore, round_: int, tasks: list[Task], spec: SamplingSpec, *, label: str,
                       params_for: Callable[[Task], SamplingParams], chunk_size: int = 32,
                       on_chunk: Callable[[int], None] | None = None, check_for: Callable[[Task], Any] | None = None,
                       executor: Any = None, check: Any = None, **workflow_kwargs: Any) -> bool:
    """K candidates per task under `label`, `chunk_size` tasks at a time as one group of lock-step waves (each wave
    stored in one write, see `TaskSampler`). With adaptive K keys and a verifier in `spec`, each wave is verified
    on `executor` as it lands (`check`: a model check such as the PRM's). `workflow_kwargs`: `tool` (default for
    `tool_use`: the code sandbox on `executor`), `critic_llm`. Returns False when the budget refused a request."""
    if spec.workflow == "tool_use" and "tool" not in workflow_kwargs:  # the code sandbox, on the job's executor
        workflow_kwargs["tool"] = sandbox_tool(executor)
    sampler = TaskSampler(spec, llm, store, round_, executor=executor, label=label, params_for=params_for,
                          check_for=check_for or (lambda task: None),
                          verify=is_adaptive(spec) and spec.verifier is not None, replay=True, check=check,
                          **workflow_kwargs)
    for chunk in chunks(tasks, chunk_size):
        outcomes = await sampler.run_group(chunk, on_wave=lambda: crash_point(f"round{round_}:{label}:chunk"))
        if any(out.budget_refused for out in outcomes):
            return False
        if on_chunk:
            on_chunk(len(chunk))
    return True


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
    `segment`: stream each task at any K in constant memory (`selfplay.pipeline.stream`: segments of this many
    samples, replies stored as they land, at most `window` requests in flight per task); None: `run` draws a task
    as `run_group` does (whole batches held in memory: the loop's and prm-label's path).
    """

    def __init__(self, gen: Any, llm: Any, store: RunStore, round_: int, *, executor: Executor | None,
                 critic_llm: Any = None, tool: Any = None, seed_of=None, check: Any = None, label: str | None = None,
                 params_for: Callable[[Task], SamplingParams] | None = None,
                 check_for: Callable[[Task], Any] | None = None, verify: bool | None = None,
                 replay: bool = False, segment: int | None = None, window: int = 64) -> None:
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
        self.segment = segment
        self.window = window

    @property
    def stored_as(self) -> str:
        return self.label or self.gen.workflow

    def plan(self, sampled: int, passed: int) -> int:
        if not self.verify:  # nothing to adapt on: fixed K
            return max(0, self.gen.k - sampled)
        return next_batch(sampled, passed, self.adaptive)

    async def run(self, task: Task) -> TaskOutcome:
        if self.segment is not None:  # streamed: constant memory at any K (the outcome holds counts, no records)
            return await stream_task(self, task)
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

    async def _draw_wave(self, wave: list, batches: list[list], stored: dict[str, dict[int, Candidate]]
                         ) -> list[list[Candidate]]:
        """Draw every batch of the wave (the whole ones again too: same batch shapes), store them in one write."""
        drawn = await asyncio.gather(*(self._draw(t, out.sampled, n) for t, out, n in wave))
        records = [r for batch, _ in drawn for r in batch]
        if records:
            self.store.put_candidates(self.round, records)
        for (task, out, _), (batch, refused), before in zip(wave, drawn, batches):
            stored[task.id].update((c.sample_index, c) for c in batch)
            out.budget_refused = refused
            if not refused and not _whole(before):
                out.new_candidates += sum(1 for c in batch if c.ok)
        return [batch for batch, _ in drawn]

    def _stored(self, task: Task) -> dict[int, Candidate]:
        if not (self.replay or self.store.had_candidates):  # a fresh run has nothing to replay: skip the look-up
            return {}
        return {c.sample_index: c for c in self.store.task_candidates(self.round, self.stored_as, task.id)}

    async def _draw(self, task: Task, first: int, n: int) -> tuple[list[Candidate], bool]:
        """The batch's records (not yet stored), and whether the budget refused one of its requests."""
        trajectories = await run_workflow(
            self.gen.workflow, self.llm, task.id, task.messages(self.gen.system_prompt), self.params_for(task), n,
            options=self.gen.workflow_options, check=self.check_for(task), tool=self.tool,
            first_index=first, critic_llm=self.critic_llm)
        kept = [t for t in trajectories if t.error != "budget"]
        return ([Candidate.from_trajectory(t, round_=self.round, task_kind=task.kind, label=self.label) for t in kept],
                budget_exhausted(trajectories))

    async def _count_passed(self, tasks: list[Task], batches: list[list[Candidate]]) -> list[int]:
        """Passed candidates per batch: one verification call for the whole wave."""
        if not self.verify or not tasks:
            return [0] * len(tasks)
        records = [c for batch in batches for c in batch]
        verified = await verify_candidates(self.store, self.round, records, {t.id: t for t in tasks},
                                           self.gen.verifier, concurrency=self.gen.verify_concurrency,
                                           executor=self.executor, check=self.check)
        passed = {c.key for c in verified if c.verdict is not None and c.verdict.passed}
        return [sum(1 for c in batch if c.key in passed) for batch in batches]

    def _check_for(self, task: Task):
        """The `feedback` workflow's check: the configured verifier against this task's reference."""
        if self.gen.verifier is None:
            return None
        return feedback_check(get_check(self.gen.verifier, self.check), task, self.executor)


def feedback_check(check: Any, task: Task, executor: Executor | None) -> Callable[[str], Any]:
    """The `feedback` workflow's check of an answer to `task`: `check` (a verifier's) against the task's reference."""

    async def check_answer(answer: str) -> CheckResult:
        verdict = await run_check(check, answer_only(task, answer), task, executor)
        return CheckResult(passed=verdict.passed, reason=verdict.reason, error=verdict.error)

    return check_answer


def sandbox_tool(executor: Executor | None) -> Callable[[str], Any]:
    """The `tool_use` workflow's tool in both jobs: the code sandbox (`verifiers.code.run_python`) on `executor`."""
    from verifiers.code import run_python

    async def run_code(code: str):
        return await asyncio.get_running_loop().run_in_executor(executor, lambda: run_python(code, timeout=10.0))
    return run_code


def _whole(batch: list[Candidate | None]) -> bool:
    """A stored batch that needs no request: every sample there and without error."""
    return all(c is not None and c.ok for c in batch)
