"""The generate job: K candidates per task from an LLM, budget-capped, resumable, priced.

What it is for: `selfplay generate`. It loads the config and tasks, opens the run store, and lets
a pool of workers take tasks that do not yet have K good candidates. Each worker runs the
configured workflow through the metered LLM (cache -> reserve -> send -> settle) and stores the
trajectories before taking the next task. When a cap refuses a request, no new task starts, the
requests in flight finish and are recorded, and the job reports `stopped_reason = "budget"`.
Running the same command again resumes: stored replies are served from the cache at $0.
What it does not do: verify or train (other jobs), or retry a whole task forever (a task whose
requests failed for good is recorded with its error kind and retried on the next resume).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.llm.metered import MeteredLLM
from agents.llm.types import SamplingParams
from agents.money.ledger import BudgetLedger, Caps
from agents.workflows.direct import run_direct
from agents.workflows.trajectory import Trajectory
from selfplay.backends import build_backend, build_metered, check_reachable, price_table
from selfplay.config import GenerateConfig
from selfplay.errors import UserError
from selfplay.progress import JobProgress, progress_enabled
from selfplay.store import RunStore
from selfplay.store.export import write_json, write_jsonl
from selfplay.tasks import Task, load_tasks

ROUND = 0  # generate jobs write round 0; the loop (`selfplay run`) writes rounds 1..N
# Settings that change what is generated: a resumed job must keep them (budget, concurrency may change).
PINNED = {"model": ("name", "backend", "base_url"),
          "generate": ("tasks", "k", "max_tokens", "temperature", "top_p", "stop", "seed", "system_prompt", "workflow")}


@dataclass
class JobState:
    total_tasks: int
    done_tasks: int = 0
    candidates: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stopped_reason: str = "done"


def task_seed(run_seed: int, task_id: str) -> int:
    digest = hashlib.sha256(f"{run_seed}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def check_resume_compatible(config: GenerateConfig, run_dir: Path) -> None:
    previous_path = run_dir / "config.json"
    if not previous_path.exists():
        return
    previous = json.loads(previous_path.read_text())
    current = config.model_dump(mode="json")
    for section, keys in PINNED.items():
        for key in keys:
            old, new = previous.get(section, {}).get(key), current[section][key]
            if old != new:
                raise UserError(f"{run_dir} holds a run with {section}.{key} = {old!r}, but this config says {new!r}; "
                                f"resume with the same settings or choose another --out")


class GenerateJob:
    def __init__(self, config: GenerateConfig, run_dir: str | Path, *, show_progress: bool | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.show_progress = progress_enabled() if show_progress is None else show_progress

    async def run(self) -> dict[str, Any]:
        tasks = load_tasks(self.config.generate.tasks)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        check_resume_compatible(self.config, self.run_dir)
        prices = price_table(self.config.prices)
        with RunStore(self.run_dir) as store:
            (self.run_dir / "config.json").write_text(json.dumps(self.config.model_dump(mode="json"), indent=2))
            store.put_tasks([t.model_dump(mode="json") for t in tasks])
            ledger = BudgetLedger(Caps(**self.config.budget.model_dump()), backend=store)
            backend = build_backend(self.config.model, self.config.generate.concurrency)
            try:
                llm = build_metered(self.config.model, backend, prices, ledger, store)
                await check_reachable(backend, self.config.model.base_url)
                started = time.monotonic()
                state = await self._generate(tasks, llm, ledger, store)
                ledger.checkpoint_time()
                summary = self._summary(store, llm, ledger, backend, state, time.monotonic() - started, prices.version)
            finally:
                await backend.aclose()
            write_jsonl(store.iter_candidates(ROUND), self.run_dir / "candidates.jsonl")
            write_json(summary, self.run_dir / "summary.json")
        return summary

    async def _generate(self, tasks: list[Task], llm: MeteredLLM, ledger: BudgetLedger, store: RunStore) -> JobState:
        gen = self.config.generate
        have = store.ok_candidate_counts(ROUND, gen.workflow)
        pending = [t for t in tasks if have.get(t.id, 0) < gen.k]
        state = JobState(total_tasks=len(tasks), done_tasks=len(tasks) - len(pending),
                         candidates=sum(have.values()))
        queue: asyncio.Queue[Task] = asyncio.Queue()
        for task in pending:
            queue.put_nowait(task)
        workers = max(1, min(gen.concurrency, len(pending)))
        progress = JobProgress("generate", len(tasks), usd_cap=self.config.budget.usd, enabled=self.show_progress)
        with progress, _stop_on_signals(state):
            await asyncio.gather(*(self._worker(queue, llm, ledger, store, state, progress) for _ in range(workers)))
            self._tick(progress, state, store, ledger, force=True)
        return state

    async def _worker(self, queue: asyncio.Queue, llm: MeteredLLM, ledger: BudgetLedger, store: RunStore,
                      state: JobState, progress: JobProgress) -> None:
        while not state.stop.is_set() and not queue.empty():
            try:
                ledger.check_open()
            except Exception:  # a cap is reached: start nothing new
                state.stopped_reason = "budget"
                state.stop.set()
                return
            task = queue.get_nowait()
            trajectories = await self._sample(task, llm)
            if any(t.error == "budget" for t in trajectories):
                state.stopped_reason = "budget"
                state.stop.set()
                trajectories = [t for t in trajectories if t.error != "budget"]
            else:
                state.done_tasks += 1
            state.candidates += sum(1 for t in trajectories if t.ok)
            if trajectories:
                store.put_candidates(ROUND, [candidate_record(t, task) for t in trajectories])
            self._tick(progress, state, store, ledger)

    async def _sample(self, task: Task, llm: MeteredLLM) -> list[Trajectory]:
        gen = self.config.generate
        params = SamplingParams(max_tokens=gen.max_tokens, temperature=gen.temperature, top_p=gen.top_p,
                                stop=gen.stop or None, seed=task_seed(gen.seed, task.id))
        return await run_direct(llm, task.id, task.messages(gen.system_prompt), params, gen.k)

    @staticmethod
    def _tick(progress: JobProgress, state: JobState, store: RunStore, ledger: BudgetLedger,
              force: bool = False) -> None:
        totals = ledger.totals
        progress.update(done=state.done_tasks, candidates=state.candidates, tokens=totals.spent_tokens,
                        usd=totals.spent_usd, requests=totals.requests, force=force)

    def _summary(self, store: RunStore, llm: MeteredLLM, ledger: BudgetLedger, backend: Any, state: JobState,
                 session_s: float, price_version: str) -> dict[str, Any]:
        money = store.ledger_summary()
        counts = store.ok_candidate_counts(ROUND, self.config.generate.workflow)
        candidates = sum(counts.values())
        complete = sum(1 for n in counts.values() if n >= self.config.generate.k)
        summary = {
            **money,
            "cache_hits": llm.cache_hits,
            "errors": store.candidate_error_counts(ROUND),
            "retried_attempts": dict(getattr(backend, "attempt_errors", {})),
            "candidates": candidates,
            "tasks": state.total_tasks,
            "tasks_complete": complete,
            "wall_s": round(ledger.elapsed_s, 3),
            "session_wall_s": round(session_s, 3),
            "stopped_reason": state.stopped_reason,
            "budget_cap": ledger.refusal.cap if ledger.refusal else None,
            "caps": self.config.budget.model_dump(),
            "usd_per_candidate": money["cost_usd"] / candidates if candidates else None,
            "usd_per_1k_completion_tokens": (money["cost_usd"] / money["completion_tokens"] * 1000
                                             if money["completion_tokens"] else None),
            "model": self.config.model.name,
            "price_table": price_version,
        }
        return summary


def candidate_record(trajectory: Trajectory, task: Task) -> dict[str, Any]:
    record = trajectory.model_dump(mode="json")
    record["round"] = ROUND
    record["task_kind"] = task.kind
    return record


class _stop_on_signals:
    """SIGINT/SIGTERM: start no new task, let in-flight ones finish and be recorded."""

    def __init__(self, state: JobState) -> None:
        self.state = state
        self.loop = asyncio.get_running_loop()

    def __enter__(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.add_signal_handler(sig, self._stop)
            except (NotImplementedError, RuntimeError):  # not the main thread
                pass

    def _stop(self) -> None:
        self.state.stopped_reason = "interrupted"
        self.state.stop.set()

    def __exit__(self, *exc: object) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
