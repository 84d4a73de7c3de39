"""The generate job: candidates per task from an LLM through a workflow, verified, budget-capped, resumable.

What it is for: `selfplay generate`. It loads the config and tasks, opens the run store, and lets a
pool of workers take tasks; each worker runs `TaskSampler` (batches of the configured workflow
through the metered LLM: cache -> reserve -> send -> settle; verified as they land when a verifier
is set; adaptive K). A request whose worst case does not fit while others are in flight waits in
the ledger for their settlements; once the ledger refuses (nothing in flight and the next request
still does not fit, or the time cap), no new task starts, the requests in flight finish and are
recorded, and the job reports `stopped_reason = "budget"` with the ledger's account (`budget_stop`). Running the same command
again resumes: stored replies are served from the cache at $0, stored verdicts are reused.
A task whose requests failed for good with a connection or timeout error is not counted complete; the job then asks
the server whether it is still there (`EndpointWatch`: one `GET /v1/models`); if it does not answer, no new task
starts, the tasks in flight end (what landed is stored), and the job reports `stopped_reason = "endpoint_lost"` with
one message (`endpoint_lost`; the CLI exits 4). Start the server and run the same command: what was stored is kept,
the failed samples are drawn again, nothing stored is paid twice. If the server still answers, the job goes on. A task
with any sample that failed for good (any error kind: a 404 for a wrong model name, a 400...) is not complete either,
and a job that ends with such tasks reports `stopped_reason = "incomplete"` (the CLI exits 6, naming the errors).
While the workers run, the run store shares commits among its frequent writes
(`RunStore.group_commits`), and each finished task is added to the summary's running tally.
With `[model] batch = true` the requests go through the provider's Batch API
(`agents.llm.batch_backend`): settled at the batch price, batch ids kept in the run store so a
killed job polls the same batches again. Where requests and checks run is the executor's business (`[executor] kind`: in this process, or
over a Ray cluster; see `selfplay.pipeline.executors`); the store, the ledger and the cache stay here either way.
What it does not do: train (see `selfplay run`), or retry a failed request forever (a sample whose
requests failed for good is recorded with its error kind; its batch is run again on the next resume).
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.llm.types import BudgetExceeded, LLMError
from agents.money.ledger import BudgetLedger
from selfplay.pipeline.llm import check_reachable, price_table
from selfplay.config.generate import PINNED, GenerateConfig, check_generate
from selfplay.core.errors import UserError
from selfplay.jobs.setup import open_run
from selfplay.pipeline.executors import open_executor
from selfplay.pipeline.sample import TaskSampler, sandbox_tool
from selfplay.pipeline.stream import ENDPOINT_ERRORS, SEGMENT, TaskOutcome
from selfplay.pipeline.summary import CandidateTally, add_session_errors, generate_summary
from selfplay.progress import JobProgress, progress_enabled
from selfplay.core.store import RunStore
from selfplay.pipeline.export import write_candidates
from selfplay.core.files import write_json
from selfplay.tasks.load import load_tasks
from selfplay.tasks.task import Task

ROUND = 0  # generate jobs write round 0; the loop (`selfplay run`) writes rounds 1..N
JSONL_LIMIT = 50_000  # above this many candidates, candidates.jsonl is written only when asked (~1 KB a row)


@dataclass
class JobState:
    total_tasks: int
    done_tasks: int = 0
    candidates: int = 0
    verifying: bool = False
    verified: int = 0  # candidates that passed the verifier (this session), for the live display
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stopped_reason: str = "done"
    sampled: int = 0  # samples planned over the tasks this session finished (samples per solved task)
    solved: int = 0   # of those tasks, how many have a passing candidate
    tally: CandidateTally = field(default_factory=CandidateTally)
    errors: dict[str, int] = field(default_factory=dict)  # samples that failed for good this session, by kind
    requests_before: int = 0  # requests answered in earlier sessions (the ledger's count at the start)
    endpoint_lost: str | None = None  # the message, once the model server stopped answering


class EndpointWatch:
    """Whether the model server is still there, asked once a task's requests failed for good with a connection or
    timeout error (the retries are spent by then): one `list_models()` (`GET /v1/models`) at a time. Lost means the
    probe failed with a connection or timeout error too; any answer (even an HTTP error) means it is there. A backend
    without `list_models` (in-process models) is never lost."""

    def __init__(self, backend: Any, url: str | None) -> None:
        self.backend, self.url = backend, url or "https://api.openai.com/v1"
        self.lock = asyncio.Lock()
        self.lost = False

    async def gone(self) -> bool:
        if not hasattr(self.backend, "list_models"):
            return False
        async with self.lock:  # concurrent workers share one probe's answer
            if not self.lost:
                try:
                    await self.backend.list_models()
                except LLMError as exc:
                    self.lost = exc.kind in ENDPOINT_ERRORS
            return self.lost


def task_seed(run_seed: int, task_id: str) -> int:
    digest = hashlib.sha256(f"{run_seed}:{task_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class GenerateJob:
    def __init__(self, config: GenerateConfig, run_dir: str | Path, *, show_progress: bool | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.show_progress = progress_enabled() if show_progress is None else show_progress

    async def run(self) -> dict[str, Any]:
        tasks = load_tasks(self.config.generate.tasks)
        check_generate(self.config)  # load_generate_config checked a file's config; this one may be built in code
        prices = price_table(self.config.prices)
        with open_run(self.config, self.run_dir, PINNED, tasks) as run:  # resume check, store, config.json, ledger
            self.executor = open_executor(self.config, self.run_dir)  # [executor] kind: in-process or Ray
            try:
                return await self._run_with_store(run.store, run.ledger, tasks, prices, self.executor.verify_pool)
            finally:
                self.executor.close()

    async def _run_with_store(self, store: RunStore, ledger: BudgetLedger, tasks: list[Task], prices: Any,
                              executor) -> dict[str, Any]:
        backends = [self.executor.backend(self.config.model, self.config.generate.concurrency)]
        try:
            llm = self.executor.metered(self.config.model, backends[0], prices, ledger, store)
            if self.config.model.batch:  # the Batch API: batch ids on record in the store, the batch price
                backends[0].attach_journal(store)
                llm.price = llm.price.batch()
            critic = self._critic(prices, ledger, store, backends)
            await check_reachable(backends[0], self.config.model.base_url)
            self.store, self.watch = store, EndpointWatch(backends[0], self.config.model.base_url)
            started = time.monotonic()
            sampler = TaskSampler(self.config.generate, llm, store, ROUND, executor=executor, critic_llm=critic,
                                  tool=self._tool(executor), seed_of=lambda tid: task_seed(self.config.generate.seed, tid),
                                  check=self._model_check(prices, ledger, store, backends),
                                  segment=SEGMENT, window=self.config.generate.concurrency)  # any K, constant memory
            async with store.group_commits():  # many requests in flight: writes share commits
                state = await self._generate(tasks, sampler, ledger)
            ledger.checkpoint_time()
            summary = generate_summary(self.config, store, llm, ledger, backends[0], state, ROUND,
                                       time.monotonic() - started, prices.version)
        finally:
            for backend in backends:
                await backend.aclose()
        store.commit()  # candidates.jsonl carries each candidate's verdict (selfplay.pipeline.export reads the store)
        summary["candidates_jsonl"] = self._write_jsonl(summary["candidates"])
        write_json(summary, self.run_dir / "summary.json")
        return summary

    def _write_jsonl(self, candidates: int) -> str | None:
        """candidates.jsonl (streamed from the store) unless it would be huge: above `JSONL_LIMIT` candidates it is
        written only when `[generate] candidates_jsonl = true` (the store holds them all; `selfplay export` reads it)."""
        asked = self.config.generate.candidates_jsonl
        if asked is False or (asked is None and candidates > JSONL_LIMIT):
            (self.run_dir / "candidates.jsonl").unlink(missing_ok=True)  # never a stale file of an earlier session
            return None
        write_candidates(self.run_dir, round_=ROUND, verifier=self.config.generate.verifier)
        return "candidates.jsonl"

    def _critic(self, prices, ledger, store, backends: list) -> Any:
        name = self.config.generate.workflow_options.get("critic_model")
        if self.config.generate.workflow != "self_refine" or not name:
            return None
        section = self.config.critic or self.config.model.model_copy(update={"name": name})
        backend = self.executor.backend(section, self.config.generate.concurrency)
        backends.append(backend)
        return self.executor.metered(section, backend, prices, ledger, store)

    def _model_check(self, prices, ledger, store, backends: list) -> Any:
        """The judge (its calls metered on the same ledger and cache) or the PRM, when configured as verifier."""
        from selfplay.pipeline.verify import judge_check, prm_check

        verifier = self.config.generate.verifier
        if verifier == "judge":
            from selfplay.pipeline.judge_adapter import AgentsJudgeLLM
            from verifiers.judge import PointwiseJudge

            section = self.config.judge
            backend = self.executor.backend(section, self.config.generate.concurrency)
            backends.append(backend)
            judge_llm = AgentsJudgeLLM(self.executor.metered(section, backend, prices, ledger, store))
            return judge_check(PointwiseJudge(judge_llm, rubric=section.rubric, principles=section.principles or None,
                                              pass_threshold=section.pass_threshold))
        if verifier == "prm":
            from verifiers.prm.model import ModelPRM

            section = self.config.prm
            options = {"pass_threshold": section.pass_threshold, "split_separator": section.step_separator}
            if section.aggregation:
                options["aggregation"] = section.aggregation
            try:
                return prm_check(ModelPRM.load(section.path, **options))
            except (FileNotFoundError, ValueError) as exc:
                raise UserError(f"[prm] path: {exc}") from exc
        return None

    def _tool(self, executor) -> Any:
        return sandbox_tool(executor) if self.config.generate.workflow == "tool_use" else None

    async def _generate(self, tasks: list[Task], sampler: TaskSampler, ledger: BudgetLedger) -> JobState:
        gen = self.config.generate
        state = JobState(total_tasks=len(tasks), verifying=gen.verifier is not None,
                         requests_before=self.store.ledger_summary()["requests"])
        queue: asyncio.Queue[Task] = asyncio.Queue()
        for task in tasks:
            queue.put_nowait(task)
        workers = max(1, min(gen.concurrency, len(tasks)))
        progress = JobProgress("generate", len(tasks), usd_cap=self.config.budget.usd, enabled=self.show_progress)
        with progress, _stop_on_signals(state):
            await asyncio.gather(*(self._worker(queue, sampler, ledger, state, progress) for _ in range(workers)))
            _tick(progress, state, ledger, force=True)
        if state.stopped_reason == "done" and state.done_tasks < state.total_tasks:
            state.stopped_reason = "incomplete"  # samples failed for good (the server, if asked, still answered)
        return state

    async def _worker(self, queue: asyncio.Queue, sampler: TaskSampler, ledger: BudgetLedger, state: JobState,
                      progress: JobProgress) -> None:
        while not state.stop.is_set() and not queue.empty():
            try:
                ledger.check_open()
            except BudgetExceeded:  # a cap is reached: start nothing new (any other failure is not "budget")
                state.stopped_reason = "budget"
                state.stop.set()
                return
            outcome = await sampler.run(queue.get_nowait())  # streamed: counts and a tally, no records kept
            state.candidates += outcome.candidates
            state.verified += outcome.passed
            state.tally.add_tally(outcome.tally)
            self._count_errors(state, outcome)
            if not outcome.endpoint_failed:
                state.sampled += outcome.sampled
                state.solved += outcome.passed > 0
            if outcome.budget_refused:
                state.stopped_reason = "budget"
                state.stop.set()
            elif outcome.endpoint_failed:  # not complete: the next resume draws its failed samples again
                if await self.watch.gone():
                    self._stop_lost(state)
            elif not outcome.errors:  # a sample that failed for good (a 404, a 400...) leaves its task incomplete
                state.done_tasks += 1
            _tick(progress, state, ledger)

    def _count_errors(self, state: JobState, outcome: TaskOutcome) -> None:
        """This session's failed samples, and the run's count over all sessions (in the store)."""
        for kind, count in outcome.errors.items():
            state.errors[kind] = state.errors.get(kind, 0) + count
        add_session_errors(self.store, outcome.errors)

    def _stop_lost(self, state: JobState) -> None:
        """The server is gone: start no new task; the first stop reason of the session stays the reason."""
        if state.endpoint_lost is None:
            answered = self.store.ledger_summary()["requests"] - state.requests_before
            state.endpoint_lost = (f"the model server at {self.watch.url} stopped answering after {answered} "
                                   f"requests; start it and run the same command to resume")
        if not state.stop.is_set():
            state.stopped_reason = "endpoint_lost"
        state.stop.set()


def _tick(progress: JobProgress, state: JobState, ledger: BudgetLedger, force: bool = False) -> None:
    if not progress.due(force):
        return
    totals = ledger.totals
    progress.update(done=state.done_tasks, candidates=state.candidates, tokens=totals.spent_tokens,
                    usd=totals.spent_usd, requests=totals.requests, verified=state.verified if state.verifying else None,
                    force=force)


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
