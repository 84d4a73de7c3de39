"""The verification stage: verdicts for stored candidates, deduplicated, in threads, written to the store.

What it is for: mapping a configured verifier name to a check of one candidate against its task
(`math`: the final answer against the task's reference; `code`: the last fenced program against the
task's tests; `auto`: the task's `kind` picks math or code, so one run mixes both; compositions through
`verifiers.compose`: `all_of:` / `any_of:` / `weighted:` / `threshold:` specs, parsed by
`selfplay.config.verifier_spec`, built by `parse_verifier`), running the checks with bounded parallelism,
verifying identical answers of a task once (the verdict is shared), and storing every verdict before anything
reads it. A candidate of a task with nothing to check against gets an error verdict ("no_reference"): unknown,
not wrong.
What it does not do: choose training data (`selfplay.pipeline.select`) or judge open-ended answers
(the judge is configured separately).
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import Executor
from typing import Any, Awaitable, Callable

from agents.workflows.dedup import answer_key
from selfplay.config.verifier_spec import MODEL_CHECKS, VerifierSpec, parse_verifier_spec
from selfplay.core.candidate import Candidate
from selfplay.core.errors import UserError
from selfplay.core.store import RunStore
from selfplay.tasks.task import Task
from verifiers.verdict import Verdict

CandidateCheck = Callable[[Candidate, Task], Verdict]
_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)```", re.DOTALL)


def extract_program(text: str) -> str:
    """The last fenced code block (```python ... ```), else the whole text."""
    blocks = _FENCE.findall(text or "")
    return blocks[-1] if blocks else (text or "")


def check_math(candidate: Candidate, task: Task) -> Verdict:
    from verifiers.math import verify

    if task.answer is None:
        return Verdict.broken("no_reference", reason=f"task {task.id} has no reference answer")
    return verify(candidate.final_answer, task.answer, finish_reason=candidate.finish_reason)


def check_code(candidate: Candidate, task: Task) -> Verdict:
    from verifiers.code import verify

    if not task.tests:
        return Verdict.broken("no_reference", reason=f"task {task.id} has no tests")
    return verify(extract_program(candidate.final_answer), task.tests)


def check_by_kind(candidate: Candidate, task: Task) -> Verdict:
    """`auto`: the task's `kind` picks the check (math or code); an open task has nothing to check against here."""
    if task.kind in ("math", "code"):
        return CHECKS[task.kind](candidate, task)
    return Verdict.broken("no_verifier", reason=f"task {task.id} is kind 'open': use verifier = \"judge\"")


CHECKS: dict[str, CandidateCheck] = {"math": check_math, "code": check_code, "auto": check_by_kind}  # = CHECK_NAMES


def parse_verifier(spec: str) -> CandidateCheck | None:
    """The check of a verifier spec (grammar: `selfplay.config.verifier_spec`): a name of CHECKS, or a composition
    of them through `verifiers.compose`: `all_of:math,code`, `any_of:math,code`, `weighted:math=0.7,code=0.3@0.5`
    (pass when the weighted score >= 0.5) or `threshold:math@0.8`. Returns the check, None for a model check (judge,
    prm); raises ValueError if malformed."""
    parsed = parse_verifier_spec(spec)
    if parsed.kind == "model":
        return None
    if parsed.kind == "check":
        return CHECKS[parsed.names[0]]
    return composite_check(parsed)


def composite_check(spec: VerifierSpec) -> CandidateCheck:
    """The check of a parsed composite spec: its parts (CHECKS) under `verifiers.compose`'s gate or sum."""
    from verifiers.compose import AllOf, AnyOf, Threshold, Weighted

    wrapped = {n: _as_verifier(CHECKS[n]) for n in spec.names}
    if spec.kind == "all_of":
        composite = AllOf(wrapped)
    elif spec.kind == "any_of":
        composite = AnyOf(wrapped)
    elif spec.kind == "weighted":
        composite = Weighted({n: (wrapped[n], w) for n, w in zip(spec.names, spec.weights)},
                             pass_threshold=1.0 if spec.level is None else spec.level)
    else:
        composite = Threshold(wrapped[spec.names[0]], min_score=spec.level)

    def check(candidate: Candidate, task: Task) -> Verdict:
        return composite(candidate.final_answer, task=task, finish_reason=candidate.finish_reason)

    return check


def _as_verifier(check: CandidateCheck):
    def verifier(response: str, *, task: Task, finish_reason: str | None = None) -> Verdict:
        return check(answer_only(task, response, finish_reason), task)
    return verifier


def answer_only(task: Task, answer: str, finish_reason: str | None = None) -> Candidate:
    """A candidate that is only an answer to `task` (the feedback workflow's check, composed verifiers' parts)."""
    return Candidate(task_id=task.id, workflow="check", sample_index=0, final_answer=answer, task_kind=task.kind,
                     finish_reason=finish_reason)


def judge_check(judge: Any) -> Callable[[Candidate, Task], Awaitable[Verdict]]:
    """An async check by a `verifiers.judge.PointwiseJudge`: it runs on the job's event loop (its LLM lives there)."""

    async def check(candidate: Candidate, task: Task) -> Verdict:
        return await judge.averify(candidate.final_answer, prompt=task.prompt)

    return check


def prm_check(prm: Any) -> CandidateCheck:
    """A check by a `verifiers.prm.model.ModelPRM`: the candidate's own steps are scored."""

    def check(candidate: Candidate, task: Task) -> Verdict:
        steps = candidate.steps or None
        return prm(candidate.final_answer, prompt=task.prompt, steps=steps)

    return check


def get_check(name: str, custom: Any = None) -> Any:
    if custom is not None:
        return custom
    if name in MODEL_CHECKS:
        raise UserError(f"verifier {name!r} needs its [{name}] config section")
    try:
        return parse_verifier(name)
    except ValueError as exc:
        raise UserError(str(exc)) from exc


def dedup_mode(verifier: str) -> str:
    return "whitespace" if verifier in ("math", "judge", "prm") else "exact"  # code (whitespace is syntax) or mixed


async def verify_candidates(store: RunStore, round_: int, candidates: list[Candidate], tasks: dict[str, Task],
                            verifier: str, *, concurrency: int = 4, executor: Executor | None = None,
                            check: Any = None) -> list[Candidate]:
    """The given candidates with their verdicts attached (stored verdicts reused; identical answers of a task
    checked once and the verdict shared); a candidate whose rollout failed comes back without a verdict.

    Run the checks on a long-lived `executor` (the code sandbox's warm workers belong to the thread
    that started them)."""
    check = get_check(verifier, check)
    done = store.verdicts_for(round_, verifier, {c.task_id for c in candidates})
    todo = [c for c in candidates if c.ok and c.key not in done]
    groups: dict[str, list[Candidate]] = {}
    for cand in todo:
        # a truncated answer never shares the verdict of a complete one (no committed answer, no pass)
        key = answer_key(cand.task_id, cand.final_answer, dedup_mode(verifier)) + f"\x00{cand.finish_reason}"
        groups.setdefault(key, []).append(cand)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def run_group(members: list[Candidate]) -> None:
        async with gate:
            verdict = await run_check(check, members[0], tasks[members[0].task_id], executor)
        shared = verdict.model_dump(mode="json")
        rows = [(m, verifier, {**shared, "details": {**shared["details"], "shared_with": len(members)}})
                for m in members]
        store.put_verdicts(round_, rows)
        for m in members:
            done[m.key] = rows[0][2]

    await asyncio.gather(*(run_group(members) for members in groups.values()))
    return [c.with_verdict(done.get(c.key)) if c.ok else c for c in candidates]


async def run_check(check: Any, candidate: Candidate, task: Task, executor: Executor | None) -> Verdict:
    """Await an async check on this loop; run a blocking one on the executor."""
    if asyncio.iscoroutinefunction(check):
        return await check(candidate, task)
    return await asyncio.get_running_loop().run_in_executor(executor, check, candidate, task)
