"""One task drawn at any K in constant memory: segments planned from stored counts, records stored as they land.

What it is for: `TaskSampler.run` of the generate job (`TaskSampler(..., segment=S)`), where one task may ask for
K = 1M samples. The task's batches are the sampler's (`TaskSampler.plan`: K, then adaptive K's batches); a batch
[f, f + n) is cut into segments of S samples counted from f. On a resumed run every segment already stored whole
(every sample there, none with an error) is taken from the store by COUNT queries (its candidates are streamed
through the summary's tally and, when unverified, through the verifier); the batch is drawn again from the first
segment that is not whole. Because every request is a pure function of (batch start, sample range) and the
segment size is a multiple of the server's cap, the resumed draw asks exactly what the killed one asked: the
replies it had paid for come from the request cache at $0, and at most the requests that were on the wire
(one window) are paid twice.
- `direct`: the rest of the batch is ONE `agents.llm.sampling.iter_k` stream (requests of `min(left, cap)`
  choices, at most `window` in flight); each reply's candidates are built, stored (a staged write), tallied and
  handed to the verifier as it lands, then released: memory holds one window of replies, never the batch.
- other workflows (multi-turn): one `run_workflow` call per segment, so memory holds one segment.
A sample whose requests failed for good is stored with its error kind and counted in `TaskOutcome.errors` (this
session's failures); a stream that failed with a connection or timeout error (`ENDPOINT_ERRORS`: the server may be
gone) ends the task there, and the job decides whether the endpoint is lost (`selfplay.jobs.generate`).
Verification (`TaskVerifier`) overlaps sampling: each landed reply is verified in the background (at most
`MAX_PENDING` replies wait), identical answers of the task are checked once for the whole task (across
segments and batches, not only within a call), and verdicts are stored compactly (no empty fields).
What it does not do: lock-step groups of tasks (`TaskSampler.run_group`, the loop's exact-resume path), schedule
tasks across workers, or choose K (`agents.workflows.adaptive`).
"""

from __future__ import annotations

import asyncio
import gc
import json
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from agents.llm.sampling import iter_k
from agents.llm.types import ChatResult, LLMError, Usage
from agents.workflows import direct
from agents.workflows.common import Rollout, _OffsetLLM, derive_seed, parse_options
from agents.workflows.dedup import answer_key
from agents.workflows.registry import budget_exhausted, run_workflow
from agents.workflows.steps import split_steps
from selfplay.core.candidate import Candidate
from selfplay.pipeline.summary import TaskTally
from selfplay.pipeline.verify import dedup_mode, get_check, run_check
from selfplay.tasks.task import Task

SEGMENT = 8192          # samples per segment: a multiple of every usual n cap (OpenAI's 128, 16, 64, 256 ...)
MAX_PENDING = 64        # landed replies waiting for their verdicts before the stream waits for the verifier
ENDPOINT_ERRORS = ("connection", "timeout")  # error kinds that may mean the model server is gone


@dataclass
class TaskOutcome:
    """What sampling one task produced: counts (streamed) or its records (the loop's lock-step waves)."""

    task_id: str
    sampled: int = 0
    passed: int = 0
    new_candidates: int = 0
    budget_refused: bool = False
    records: list[Candidate] = field(default_factory=list)  # the batches sampled or reused, in order (run_group)
    stored: list[Candidate] = field(default_factory=list)   # every stored candidate of the task, by index (run_group)
    candidates: int = 0  # candidates without error sampled or reused (streamed tasks: records are not kept)
    tally: Any = None    # a streamed task's `selfplay.pipeline.summary.TaskTally` (records are not kept)
    errors: dict[str, int] = field(default_factory=dict)  # samples that failed for good this session, by kind

    @property
    def endpoint_failed(self) -> bool:
        """Whether some sample failed with a connection or timeout error (is the server still there?)."""
        return any(self.errors.get(kind) for kind in ENDPOINT_ERRORS)

    def count_errors(self, records: list[Candidate]) -> None:
        for c in records:
            if c.error is not None:
                self.errors[c.error] = self.errors.get(c.error, 0) + 1


MAX_KNOWN = 100_000     # distinct answers per task whose verdict is remembered (beyond: checked again)
READ_CHUNK = 2048       # stored candidates read back per chunk on a resumed run


async def stream_task(sampler: Any, task: Task) -> Any:
    """Every batch of `task` (the sampler's plan), streamed; the outcome counts, it holds no records."""
    _tune_gc()
    out = TaskOutcome(task.id)
    out.tally = TaskTally(task.id)
    verifier = TaskVerifier(sampler, task) if sampler.verify else None
    look = sampler.replay or sampler.store.had_candidates
    while not (out.budget_refused or out.endpoint_failed) and (n := sampler.plan(out.sampled, out.passed)) > 0:
        first, end = out.sampled, out.sampled + n
        start = await _reuse(sampler, task, first, end, verifier, out) if look else first
        if start < end:
            if sampler.gen.workflow == direct.NAME:
                await _stream_direct(sampler, task, first, start, end, verifier, out)
            else:
                await _by_segments(sampler, task, start, end, verifier, out)
        if verifier is not None:
            out.passed += await verifier.drain()
        out.sampled = end
    return out


def _tune_gc() -> None:
    """Once per process, before its first streamed task: the cyclic GC is set for a stream of short-lived records.
    What the process built until then (modules, clients, config) is frozen out of its collections (`gc.freeze`), and
    the youngest generation is collected after GC_YOUNG allocations instead of 700: a reply's 128 candidates (some
    thousand containers, freed by reference counting once stored) then die young instead of being promoted and walked
    again by full collections. Measured at K = 100k: 2,000 young and 15 full collections, 2 to 7 s of the job's
    15 to 22 s of CPU, became 209 and 1 (0.3 s)."""
    global _GC_TUNED
    if not _GC_TUNED:
        _GC_TUNED = True
        gc.freeze()
        young, *older = gc.get_threshold()
        if young:  # 0: the process turned automatic collection off; leave it so
            gc.set_threshold(max(young, GC_YOUNG), *older)


GC_YOUNG = 100_000
_GC_TUNED = False


async def _reuse(sampler: Any, task: Task, first: int, end: int, verifier: "TaskVerifier | None", out: Any) -> int:
    """The start of the first segment of [first, end) not stored whole; the whole ones before it are tallied
    (and verified where a verdict is missing) from the store."""
    store, label, size = sampler.store, sampler.stored_as, sampler.segment
    at = first
    while at < end:
        stop = min(at + size, end)
        if store.count_ok_candidates(sampler.round, label, task.id, at, stop) < stop - at:
            break
        judged = verifier is not None and store.count_verdicts(sampler.round, label, task.id, verifier.name,
                                                               at, stop) >= stop - at
        for chunk in store.iter_task_range(sampler.round, label, task.id, at, stop, READ_CHUNK):
            out.tally.add(chunk)
            out.candidates += len(chunk)
            if verifier is not None and not judged:
                await verifier.submit(chunk)
        if judged:
            out.passed += store.count_passed(sampler.round, label, task.id, verifier.name, at, stop)
        at = stop
    return at


async def _stream_direct(sampler: Any, task: Task, first: int, start: int, end: int,
                         verifier: "TaskVerifier | None", out: Any) -> None:
    """Samples [start, end) of the `direct` batch that starts at `first`, as one stream of requests."""
    messages = task.messages(sampler.gen.system_prompt)
    params = sampler.params_for(task)
    if first:  # the seed of a later batch, exactly as `agents.workflows.common.first_turn` derives it
        params = params.with_(seed=derive_seed(params.seed, first, 0))
    separator = parse_options(direct.DirectOptions, sampler.gen.workflow_options, direct.NAME).step_separator
    build = _Builder(sampler, task, messages, first, separator)
    landed = bytearray(end - start)
    try:
        async with aclosing(iter_k(_OffsetLLM(sampler.llm, first), messages, params, end - start,
                                   start=start - first, window=sampler.window)) as results:
            async for result in results:
                records = build(result)
                for c in records:
                    landed[c.sample_index - start] = 1
                await _land(sampler, records, verifier, out)
    except LLMError as exc:
        if exc.kind == "budget":
            out.budget_refused = True
            return
        await _fail_rest(sampler, build, landed, start, exc, out)


async def _fail_rest(sampler: Any, build: "_Builder", landed: bytearray, start: int, exc: LLMError, out: Any) -> None:
    """The samples a failed stream never got, recorded with the error (the next resume draws them again)."""
    missing = [start + i for i, got in enumerate(landed) if not got]
    for at in range(0, len(missing), READ_CHUNK):
        records = [build.failed(index, exc) for index in missing[at:at + READ_CHUNK]]
        sampler.store.put_candidates(sampler.round, records)
        out.tally.add(records)
        out.count_errors(records)


async def _by_segments(sampler: Any, task: Task, start: int, end: int, verifier: "TaskVerifier | None",
                       out: Any) -> None:
    """Samples [start, end) of a multi-turn workflow: one `run_workflow` call per segment."""
    for at in range(start, end, sampler.segment):
        n = min(sampler.segment, end - at)
        trajectories = await run_workflow(
            sampler.gen.workflow, sampler.llm, task.id, task.messages(sampler.gen.system_prompt),
            sampler.params_for(task), n, options=sampler.gen.workflow_options, check=sampler.check_for(task),
            tool=sampler.tool, first_index=at, critic_llm=sampler.critic_llm)
        records = [Candidate.from_trajectory(t, round_=sampler.round, task_kind=task.kind, label=sampler.label)
                   for t in trajectories if t.error != "budget"]
        await _land(sampler, records, verifier, out)
        if budget_exhausted(trajectories):
            out.budget_refused = True
            return


async def _land(sampler: Any, records: list[Candidate], verifier: "TaskVerifier | None", out: Any) -> None:
    """Store, count, tally and hand to the verifier one landed piece; nothing of it is kept afterwards."""
    if not records:
        return
    sampler.store.put_candidates(sampler.round, records)
    ok = sum(1 for c in records if c.ok)
    out.candidates += ok
    out.new_candidates += ok
    out.tally.add(records)
    if ok < len(records):
        out.count_errors(records)
    if verifier is not None:
        await verifier.submit(records)


class _Builder:
    """Candidates of one `direct` reply: what `agents.workflows.direct` would build through a Rollout and a
    Trajectory (the usage and $ of the reply shared by its choices, the request counted on the first), built
    straight into the Candidate, with each distinct text split into steps once (a million samples of one task
    are mostly repeats). `tests/test_large_k_stream.py` checks it against the workflow's own path."""

    def __init__(self, sampler: Any, task: Task, messages: list, first: int, separator: str | None) -> None:
        self.sampler, self.task, self.first, self.separator = sampler, task, first, separator
        self.messages = messages
        self.prompt = [m if isinstance(m, dict) else m.model_dump(mode="json") for m in messages]
        self.model = sampler.llm.model
        self.label = sampler.label
        self.workflow = self.label or direct.NAME
        self.generator = direct.NAME if self.label is not None else None
        self.steps: dict[str, list[str]] = {}

    def __call__(self, result: ChatResult) -> list[Candidate]:
        share = max(1, len(result.choices))
        total = result.usage
        usage = Usage(prompt_tokens=total.prompt_tokens // share, completion_tokens=total.completion_tokens // share,
                      cached_prompt_tokens=total.cached_prompt_tokens // share, estimated=total.estimated)
        cost = 0.0 + result.cost_usd / share
        records = []
        for position, choice in enumerate(result.choices):
            message = dict(choice.message)
            message.setdefault("role", "assistant")
            content = message.get("content")
            text = str(content) if message["role"] == "assistant" and content else ""
            sampled = bool(choice.token_ids)
            records.append(Candidate.trusted(  # every field, each of its type: no validation, no copies
                task_id=self.task.id, round=self.sampler.round, workflow=self.workflow,
                sample_index=self.first + choice.index, generator=self.generator, task_kind=self.task.kind,
                model=self.model, prompt=self.prompt, completion=[message], final_answer=text,
                steps=self._steps(text), finish_reason=choice.finish_reason, usage=usage,  # shared, never mutated
                cost_usd=cost, requests=result.requests if position == 0 else 0,
                cache_hits=int(result.cache_hit) if position == 0 else 0, turns=1, tool_calls=0, tool_errors=0,
                stop_reason="final", error=None, error_message=None, metadata={},
                completion_token_ids=choice.token_ids if sampled else None,
                completion_logprobs=choice.logprobs if sampled else None, verdict=None))
        return records

    def _steps(self, text: str) -> list[str]:
        steps = self.steps.get(text)
        if steps is None:
            steps = split_steps(text, self.separator)
            if len(self.steps) < 4096:
                self.steps[text] = steps
        return list(steps)

    def failed(self, index: int, exc: LLMError) -> Candidate:
        rollout = Rollout(self.task.id, index, direct.NAME, self.model, list(self.messages), len(self.messages))
        rollout.fail(exc)
        return Candidate.from_trajectory(direct.finish(rollout, self.separator), round_=self.sampler.round,
                                         task_kind=self.task.kind, label=self.label)


class TaskVerifier:
    """Verdicts of one task's candidates, in the background while the task is sampled.

    Identical answers (the verifier's dedup key) are checked once for the whole task; concurrent candidates with
    the same new answer wait for the one check. `submit(records)` returns once the piece is queued (it waits
    while `MAX_PENDING` pieces are queued); `drain()` waits for all of them and returns the passes counted since
    the last drain. Verdicts are stored compactly: fields that are None or empty are left out."""

    def __init__(self, sampler: Any, task: Task) -> None:
        self.sampler, self.task = sampler, task
        self.name = sampler.gen.verifier
        self.check = get_check(self.name, sampler.check)
        self.mode = dedup_mode(self.name)
        self.known: dict[str, tuple[bool, float, str | None, str]] = {}  # key -> (passed, score, error, JSON)
        self.checking: dict[str, asyncio.Future] = {}
        self.keys_of: dict[str, str] = {}
        self.gate = asyncio.Semaphore(max(1, sampler.gen.verify_concurrency))
        self.room = asyncio.Semaphore(MAX_PENDING)
        self.pending: set[asyncio.Task] = set()
        self.passed = 0
        self.checks = 0  # checks actually run (the rest shared a verdict)

    async def submit(self, records: list[Candidate]) -> None:
        await self.room.acquire()
        job = asyncio.ensure_future(self._verify(records))
        self.pending.add(job)
        job.add_done_callback(self.pending.discard)

    async def drain(self) -> int:
        while self.pending:
            await asyncio.gather(*list(self.pending))
        passed, self.passed = self.passed, 0
        return passed

    async def _verify(self, records: list[Candidate]) -> None:
        try:
            rows = []
            for candidate in records:
                if not candidate.ok:
                    continue
                key = self._key(candidate.final_answer)
                verdict = self.known.get(key)
                if verdict is None:
                    verdict = await self._checked(key, candidate)
                passed, score, error, body = verdict
                rows.append((candidate, passed, score, error, body))
                self.passed += passed and not error
            if rows:
                self.sampler.store.put_encoded_verdicts(self.sampler.round, self.name, rows)
        finally:
            self.room.release()

    def _key(self, text: str) -> str:
        """The verifier's dedup key of an answer, remembered per text (most of a task's K answers repeat)."""
        key = self.keys_of.get(text)
        if key is None:
            key = answer_key(self.task.id, text, self.mode)
            if len(self.keys_of) < 4096:
                self.keys_of[text] = key
        return key

    async def _checked(self, key: str, candidate: Candidate) -> tuple[bool, float, str | None, str]:
        waiting = self.checking.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        future = asyncio.get_running_loop().create_future()
        self.checking[key] = future
        try:
            async with self.gate:
                verdict = await run_check(self.check, candidate, self.task, self.sampler.executor)
            self.checks += 1
            shown = compact_verdict(verdict.model_dump(mode="json"))
            compact = (bool(shown["passed"]), float(shown["score"]), shown.get("error"),
                       json.dumps(shown, ensure_ascii=False, separators=(",", ":")))
            if len(self.known) < MAX_KNOWN:
                self.known[key] = compact
            future.set_result(compact)
            return compact
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            del self.checking[key]


def compact_verdict(verdict: dict[str, Any]) -> dict[str, Any]:
    """A verdict without its None / empty fields (`passed` and `score` always kept: the store's columns)."""
    return {k: v for k, v in verdict.items() if k in ("passed", "score") or v not in (None, {}, [], "")}
