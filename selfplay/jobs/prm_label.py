"""The prm-label job: Math-Shepherd step labels for candidates, budget-capped and resumable.

What it is for: `selfplay prm-label`. It takes candidates (a `candidates.jsonl` written by `selfplay
generate`, or K per task sampled here first, through the generate job's `TaskSampler`), and for each one
samples N completions from every step prefix with the policy (`selfplay.jobs.prm_rollouts`), checks them
with the math verifier (a candidate whose task and text repeat an earlier one's is labelled once: `dedup`,
on by default, counted in `duplicates`), and writes `prm.jsonl` (+ `.parquet`) in the TRL PRM format `{"prompt",
"completions": [step, ...], "labels": [...]}` that `selfplay train prm` reads, and `summary.json`.
Every request goes through the metered LLM (content-keyed cache + budget ledger in the run store); every
batch of rollouts is stored before it is used. A budget cap stops it with `stopped_reason = "budget"`
(the rows finished so far are written); running the same command again resumes at $0 for what was paid.
What it does not do: train the PRM (`selfplay train prm`), or label non-math tasks (the verifier is math).
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agents.llm.types import BudgetExceeded, SamplingParams
from agents.money.ledger import BudgetLedger
from selfplay.pipeline.llm import (Engine, build_backend, build_metered, check_reachable, price_table,
                                   set_torch_threads)
from selfplay.config.common import ModelSection
from selfplay.config.generate import GenerateSection
from selfplay.config.prm_label import PINNED, PrmLabelConfig
from selfplay.core.candidate import Candidate
from selfplay.core.crashpoints import crash_point
from selfplay.pipeline.datasets import write_dataset
from selfplay.core.errors import UserError
from selfplay.jobs.generate import task_seed
from selfplay.jobs.setup import open_run
from selfplay.jobs.prm_rollouts import ROUND, CandidateLabeller, RolloutSettings
from selfplay.pipeline.sample import TaskSampler
from selfplay.core.store import RunStore
from selfplay.core.files import write_json
from selfplay.tasks.load import load_tasks
from selfplay.tasks.task import Task

CRASH_AFTER_CANDIDATE = "prm_label:candidate"   # SELFPLAY_CRASH_AT: after a candidate's rollouts are stored


def read_candidates(path: str, tasks: dict[str, Task]) -> list[Candidate]:
    """The usable candidates of a candidates.jsonl (no error, task known), in file order."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"[prm_label] candidates = {path!r}: no such file")
    out = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{path}:{number}: not JSON ({exc})") from exc
        if not isinstance(record, dict):
            raise UserError(f"{path}:{number}: expected a JSON object (a candidates.jsonl row)")
        if record.get("error") is None and record.get("task_id") in tasks:
            try:
                out.append(Candidate.from_store({"workflow": "input", "sample_index": number, **record}))
            except ValidationError as exc:
                err = exc.errors()[0]
                raise UserError(f"{path}:{number}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from exc
    return out


def dedup_candidates(candidates: list[Candidate], dedup: bool) -> tuple[list[Candidate], int]:
    """(the candidates to label, how many were left out as a repeat of an earlier one's task and text)."""
    if not dedup:
        return candidates, 0
    seen: set[tuple[str, str]] = set()
    kept = []
    for candidate in candidates:
        key = (candidate.task_id, candidate.final_answer or "")
        if key not in seen:
            seen.add(key)
            kept.append(candidate)
    return kept, len(candidates) - len(kept)


def policy_backend(model: ModelSection, concurrency: int, threads: int | None = None) -> Any:
    """The policy's backend, able to continue a final assistant message (local: natively; openai: vLLM flags)."""
    if model.backend == "local":
        set_torch_threads(threads)
    return build_backend(model, concurrency, Engine(continue_final=True))


class PrmLabelJob:
    def __init__(self, config: PrmLabelConfig, run_dir: str | Path) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.stopped_reason = "done"

    async def run(self) -> dict[str, Any]:
        section = self.config.prm_label
        tasks = {t.id: t for t in load_tasks(section.tasks)}
        prices = price_table(self.config.prices)
        with open_run(self.config, self.run_dir, PINNED, tasks.values()) as run:  # resume check, store, ledger
            store, ledger = run.store, run.ledger
            backend = policy_backend(self.config.model, section.concurrency, section.threads)
            try:
                await check_reachable(backend, self.config.model.base_url)
                llm = build_metered(self.config.model, backend, prices, ledger, store)
                started = time.monotonic()
                candidates, duplicates = dedup_candidates(await self._candidates(tasks, llm, store, ledger),
                                                          section.dedup)
                rows, counts = await self._label_all(candidates, tasks, llm, store, ledger)
                counts["duplicates"] = duplicates
                ledger.checkpoint_time()
                summary = self._summary(store, llm, ledger, rows, counts, time.monotonic() - started)
            finally:
                await backend.aclose()
        paths = write_dataset(rows, self.run_dir / "prm")
        write_json({**summary, "files": paths}, self.run_dir / "summary.json")
        return summary

    async def _candidates(self, tasks: dict[str, Task], llm: Any, store: RunStore,
                          ledger: BudgetLedger) -> list[dict[str, Any]]:
        section = self.config.prm_label
        if section.candidates:
            return read_candidates(section.candidates, tasks)
        gen = GenerateSection(tasks=section.tasks, k=section.k, max_tokens=section.max_tokens,
                              temperature=section.temperature, top_p=section.top_p, seed=section.seed,
                              system_prompt=section.system_prompt, verifier="math",
                              workflow_options={"step_separator": section.separator} if section.separator else {})
        out: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=2) as pool:
            sampler = TaskSampler(gen, llm, store, ROUND, executor=pool,
                                  seed_of=lambda tid: task_seed(section.seed, tid))
            gate = asyncio.Semaphore(section.concurrency)

            async def one(task: Task):
                async with gate:
                    if ledger.refusal is None:
                        return await sampler.run(task)
                    return None
            outcomes = await asyncio.gather(*(one(task) for task in tasks.values()))
        for outcome in outcomes:
            if outcome is None or outcome.budget_refused:
                self.stopped_reason = "budget"
                continue
            out.extend(r for r in outcome.records if r.ok)
        return out

    async def _label_all(self, candidates: list[Candidate], tasks: dict[str, Task], llm: Any,
                         store: RunStore, ledger: BudgetLedger) -> tuple[list[dict[str, Any]], dict[str, int]]:
        section = self.config.prm_label
        settings = RolloutSettings(section.rollouts, section.separator, section.soft,
                                   SamplingParams(max_tokens=section.max_tokens, temperature=section.temperature,
                                                  top_p=section.top_p), section.seed, section.system_prompt)
        labeller = CandidateLabeller(llm, store, settings)
        results: list[Any] = [None] * len(candidates)
        gate = asyncio.Semaphore(section.concurrency)

        async def one(position: int, candidate: Candidate) -> None:
            async with gate:
                if self.stopped_reason == "budget" or not _open(ledger):
                    self.stopped_reason = "budget"
                    return
                results[position] = labelled = await labeller.label(candidate, tasks[candidate.task_id])
                if labelled.budget_refused:
                    self.stopped_reason = "budget"
                else:
                    crash_point(CRASH_AFTER_CANDIDATE)

        await asyncio.gather(*(one(i, c) for i, c in enumerate(candidates)))
        done = [r for r in results if r is not None and not r.budget_refused]
        rows = [r.row for r in done if r.row is not None]
        counts = {"candidates": len(candidates), "labelled": len(done), "rows": len(rows),
                  "left_out": sum(1 for r in done if r.row is None),
                  "steps": sum(len(row["labels"]) for row in rows)}
        return rows, counts

    def _summary(self, store: RunStore, llm: Any, ledger: BudgetLedger, rows: list[dict[str, Any]],
                 counts: dict[str, int], session_s: float) -> dict[str, Any]:
        labels = [float(label) for row in rows for label in row["labels"]]
        return {**store.ledger_summary(), **counts, "cache_hits": llm.cache_hits,
                "positive_step_fraction": sum(labels) / len(labels) if labels else None,
                "stopped_reason": self.stopped_reason,
                "budget_cap": ledger.refusal.cap if ledger.refusal else None,
                "caps": self.config.budget.model_dump(), "wall_s": round(ledger.elapsed_s, 3),
                "session_wall_s": round(session_s, 3), "model": self.config.model.name,
                "rollouts_per_prefix": self.config.prm_label.rollouts, "soft": self.config.prm_label.soft}


def _open(ledger: BudgetLedger) -> bool:
    try:
        ledger.check_open()
    except BudgetExceeded:  # a cap is reached: start nothing new (any other failure is not "budget")
        return False
    return True
