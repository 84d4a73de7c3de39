"""Math-Shepherd rollouts for one candidate: N completions from each step prefix, stored, verified, labelled.

What it is for: the per-candidate half of `selfplay prm-label`. A candidate's text is cut into steps
(`verifiers.prm.split_steps`); for each prefix but the last (the text exactly as the policy wrote it, up
to the start of the next step) the `direct` workflow asks the policy for N continuations of that prefix
(the prefix is a final, unfinished assistant message: the chat is continued, not answered anew); each
prefix + continuation is checked by the math verifier against the task's reference, and
`verifiers.prm.labels` turns the verdicts into hard or soft labels. Rollouts go through the metered LLM
(cache, budget) and are stored in the run store's `candidates` table under the workflow label
`prm:r<round>:<workflow>:<index>:<step>` before their verdicts are used, so a resumed job reuses them
(and a paid but unstored reply is a $0 cache hit).
The policy's backend continues such a prefix: `selfplay.pipeline.llm.build_backend(..., Engine(continue_final=True))`
(the local backend's `continue_final_message`, or the flags a vLLM / SGLang server needs).
What it does not do: schedule candidates, stop the job, or write datasets (`selfplay.jobs.prm_label`).
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from typing import Any

from agents.llm.types import SamplingParams
from agents.workflows.registry import budget_exhausted, run_workflow
from selfplay.core.candidate import Candidate
from selfplay.core.store import RunStore
from selfplay.tasks.task import Task
from selfplay.pipeline.verify import answer_only, check_math
from verifiers.prm.labels import prm_row, step_labels
from verifiers.prm.steps import split_steps
from verifiers.verdict import Verdict

ROUND = 0


@dataclass
class RolloutSettings:
    rollouts: int
    separator: str | None
    soft: bool
    params: SamplingParams          # seed is replaced per prefix
    seed: int
    system_prompt: str | None


@dataclass
class Labelled:
    row: dict[str, Any] | None      # the TRL PRM row, None when a label is unknown
    steps: int
    rollouts_drawn: int = 0         # completions sent to the LLM (not served from the store)
    budget_refused: bool = False


def candidate_label(candidate: Candidate) -> str:
    return f"r{candidate.round}:{candidate.workflow}:{candidate.sample_index}"


def prefixes(text: str, steps: list[str]) -> list[str]:
    """For each step but the last: the text as written, up to where the next step starts."""
    starts, position = [], 0
    for step in steps:
        start = text.find(step, position)
        if start < 0:  # cannot happen for steps cut from `text`; be safe and rebuild from the steps
            return [" ".join(steps[:i + 1]) + " " for i in range(len(steps) - 1)]
        starts.append(start)
        position = start + len(step)
    return [text[:start] for start in starts[1:]]


def prefix_seed(run_seed: int, task_id: str, label: str) -> int:
    digest = hashlib.sha256(f"{run_seed}:{task_id}:{label}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def check_text(text: str, task: Task, finish_reason: str | None = None) -> Verdict:
    return check_math(answer_only(task, text, finish_reason), task)


class CandidateLabeller:
    """Labels candidates of one run: rollouts through `llm`, stored in `store`, checked by the math verifier."""

    def __init__(self, llm: Any, store: RunStore, settings: RolloutSettings) -> None:
        self.llm = llm
        self.store = store
        self.settings = settings

    async def label(self, candidate: Candidate, task: Task) -> Labelled:
        text = candidate.final_answer or ""
        steps = split_steps(text, self.settings.separator)
        if not steps:
            return Labelled(row=None, steps=0)
        own = await asyncio.to_thread(check_text, text, task)
        base = candidate_label(candidate)
        drawn = await asyncio.gather(*(self._prefix_verdicts(task, f"prm:{base}:{i + 1}", prefix)
                                       for i, prefix in enumerate(prefixes(text, steps))))
        result = Labelled(row=None, steps=len(steps), rollouts_drawn=sum(n for _, n in drawn))
        if any(verdicts is None for verdicts, _ in drawn):
            result.budget_refused = True
            return result
        labels = step_labels([verdicts for verdicts, _ in drawn], own, soft=self.settings.soft)
        prompt = task.prompt if isinstance(task.prompt, str) else task.messages(self.settings.system_prompt)
        result.row = prm_row(prompt, steps, labels)
        return result

    async def _prefix_verdicts(self, task: Task, label: str, prefix: str) -> tuple[list[Verdict] | None, int]:
        """Verdicts of the N completions of one prefix (None: the budget refused), and how many were drawn."""
        n = self.settings.rollouts
        stored = self.store.task_candidates(ROUND, label, task.id)
        drawn = 0
        if len(stored) < n or any(not r.ok for r in stored):
            stored = await self._draw(task, label, prefix)
            if stored is None:
                return None, n
            drawn = n
        verdicts = [await asyncio.to_thread(check_text, prefix + r.final_answer, task, r.finish_reason) if r.ok
                    else Verdict.broken(f"rollout failed: {r.error}") for r in stored]
        return verdicts, drawn

    async def _draw(self, task: Task, label: str, prefix: str) -> list[Candidate] | None:
        messages = task.messages(self.settings.system_prompt) + [{"role": "assistant", "content": prefix}]
        params = self.settings.params.with_(seed=prefix_seed(self.settings.seed, task.id, label))
        trajectories = await run_workflow("direct", self.llm, task.id, messages, params, self.settings.rollouts)
        kept = [t for t in trajectories if t.error != "budget"]
        records = []
        for t in kept:
            record = Candidate.from_trajectory(t, round_=ROUND, task_kind=task.kind)
            records.append(record.model_copy(update={"workflow": label,
                                                     "metadata": {**record.metadata, "prm_prefix": prefix}}))
        if records:
            self.store.put_candidates(ROUND, records)
        return None if budget_exhausted(trajectories) else records
