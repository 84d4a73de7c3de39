"""`selfplay run`: rounds of generate -> verify -> select -> train -> evaluate, resumable and budget-capped.

What it is for: the self-improvement loop. Round 0 is the starting policy (after an optional
cold-start SFT on seed rows), evaluated on the held-out set. Each round r >= 1 samples K candidates
per training task with the policy of round r-1, verifies them, selects training rows (SFT /
preference pairs / RL groups), trains, saves `checkpoints/round-r`, evaluates, and writes the round
record and the report. Every phase writes to the run store before the next reads, so `kill -9`
anywhere followed by the same command continues from the last durable step; with the local
backend the results equal an uninterrupted run's. The control arm (`loop.arm = "control"`) trains
the same number of steps per round on the seed rows alone.
The policy is a `selfplay.policy.Policy`: local (trained and sampled here) or served (trained here,
published each round to an OpenAI-compatible server, sampled through the `openai` backend with the run
store's request cache, so a resumed run never pays twice for a stored request).
What it does not do: start the server of a served policy (it must be running at [policy] url).
"""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agents.llm.metered import MeteredLLM
from agents.llm.types import BudgetExceeded, SamplingParams
from agents.money.ledger import BudgetLedger
from agents.workflows.common import CheckResult
from agents.workflows.registry import spec
from selfplay.core.crashpoints import crash_point
from selfplay.core.errors import BudgetStop, UserError
from selfplay.pipeline.export import round_candidate_ids, write_candidates, write_round_rows
from selfplay.pipeline import guards, monitors
from selfplay.jobs import phases
from selfplay.tasks.loop import LoopTasks, load_loop_tasks
from selfplay.policy import Policy, build_policy
from selfplay.pipeline.report import write_report
from selfplay.config.run import PINNED, RunConfig
from selfplay.jobs.setup import OpenRun, open_run
from selfplay.core.store import RunStore
from selfplay.core.files import write_json
from selfplay.tracking import open_tracker
from selfplay.pipeline.verify import get_check, run_check, verify_candidates

DONE = "done"


class RunJob:
    def __init__(self, config: RunConfig, run_dir: str | Path, *, title: str = "selfplay run",
                 progress: Any = None) -> None:
        if config.model.backend != "local" and config.policy.mode == "local":  # load_run_config names the line
            raise UserError(f"[model] backend = {config.model.backend!r} with [policy] mode = \"local\": set backend "
                            "= \"local\", or sample from a server with [policy] mode = \"served\", url and base_model")
        self.config = config
        self.dir = Path(run_dir)
        self.title = title
        self.progress = progress  # a selfplay.progress.PhaseProgress, or None

    # --- orchestration ------------------------------------------------------------------------
    async def run(self) -> list[dict[str, Any]]:
        tasks = load_loop_tasks(self.config.tasks, self.config.generate.seed)  # bad task files fail before any write
        with open_run(self.config, self.dir, PINNED, tasks.train + tasks.eval) as run:  # a refusal writes nothing
            _set_threads(self.config.local.threads)
            executor = ThreadPoolExecutor(max_workers=self.config.generate.verify_concurrency,
                                          thread_name_prefix="selfplay-verify")
            try:
                return await self._run(run, tasks, executor)
            finally:
                executor.shutdown(wait=True)

    async def _run(self, run: OpenRun, tasks: LoopTasks, executor) -> list[dict[str, Any]]:
        store, ledger = run.store, run.ledger
        policy = build_policy(self.config, self.dir)
        await policy.prepare()  # a served policy's server answers before anything is spent
        ctx = _Round(self, store, ledger, policy, tasks, executor)
        self.tracker = open_tracker(self.config.tracking.names, self.dir, self.config.model_dump(mode="json"))
        try:
            for round_ in range(0, self.config.loop.rounds + 1):
                if _phase(store, round_) != DONE:
                    await ctx.run_round(round_)
                ledger.checkpoint_time()
        except BudgetExceeded as exc:
            ledger.checkpoint_time()
            self._finish(store)
            raise BudgetStop(f"{exc.message}; the round state is recorded, raise [budget] and run again") from exc
        finally:
            await policy.close()
            if self.tracker is not None:
                self.tracker.close()
        return self._finish(store)

    def _finish(self, store: RunStore) -> list[dict[str, Any]]:
        rounds = [r for r in store.get_rounds() if r["phase"] == DONE]
        write_report(rounds, self.dir, self.title)
        write_json({"rounds": rounds}, self.dir / "rounds.json")
        store.commit()  # every candidate with its verdicts, for readers without SQL (selfplay.pipeline.export)
        write_candidates(self.dir, verifier=self.config.generate.verifier)
        return rounds

    def say(self, text: str) -> None:
        if self.progress is not None:
            self.progress.print(text)

    def phase(self, description: str, total: int):
        """Start a phase on the display; returns the `advance` callback (a no-op without a display)."""
        if self.progress is None:
            return lambda n=1: None
        self.progress.phase(f"{self.config.loop.arm}: {description}", total)
        return self.progress.advance


def _set_threads(configured: int | None) -> None:
    """Torch CPU threads: `[local] threads`, else $SELFPLAY_TORCH_THREADS, else torch's default."""
    import os

    threads = configured or int(os.environ.get("SELFPLAY_TORCH_THREADS", "0") or 0)
    if threads:
        import torch
        torch.set_num_threads(threads)


def _phase(store: RunStore, round_: int) -> str | None:
    for record in store.get_rounds():
        if record["round"] == round_:
            return record["phase"]
    return None


class _Round:
    """What one round needs; `run_round` is re-entrant: finished phases are skipped on resume."""

    def __init__(self, job: RunJob, store: RunStore, ledger: BudgetLedger, policy: Policy, tasks: LoopTasks,
                 executor) -> None:
        self.job, self.cfg, self.store, self.ledger = job, job.config, store, ledger
        self.policy, self.tasks, self.executor = policy, tasks, executor
        # --- PRM: verifier = "prm" (its check per round, retraining, best-of-N); see selfplay.jobs.prm_refresh
        from selfplay.jobs.prm_refresh import LoopPRM
        self.prm = LoopPRM(self.cfg, job.dir, job.phase) if self.cfg.prm is not None else None
        # --- end PRM

    async def run_round(self, round_: int) -> None:
        started, spent = time.monotonic(), self.ledger.totals.spent_usd
        record: dict[str, Any] = {"round": round_, "arm": self.cfg.loop.arm}
        if round_ == 0:
            record.update(await self._cold_start())
        else:
            self.policy.load_round(round_ - 1)
            record.update(await self._improve(round_))
        record.update(await self._evaluate(round_))
        if round_ > 0:
            record = self._guard(round_, record)
        record.update(seconds=round(time.monotonic() - started, 2), cost_usd=self.ledger.totals.spent_usd - spent,
                      checkpoint=str(self.policy.checkpoint(round_)))
        self.store.put_round(round_, DONE, record)
        if self.job.tracker is not None:  # selfplay.tracking: the round, then its trainer steps
            self.job.tracker.log_round(record, [r for r in self.store.get_rounds() if r["phase"] == DONE])
        write_report([r for r in self.store.get_rounds() if r["phase"] == DONE], self.job.dir, self.job.title)
        self.job.say(_round_line(record))

    async def _cold_start(self) -> dict[str, Any]:
        if self.policy.has_checkpoint(0):
            self.policy.load_round(0)
            return {"train": {"skipped": "checkpoint present"}}
        self.policy.load_initial()
        metrics: dict[str, Any] = {"skipped": "no seed rows"}
        if self.tasks.seed_rows and self.cfg.train.cold_start_epochs:
            self.job.phase(f"round 0 cold-start SFT on {len(self.tasks.seed_rows)} rows", 1)
            settings = {k: v for k, v in self.cfg.train.settings.items() if k not in ("max_steps", "epochs")}
            metrics = phases.train_policy(self.policy, self.tasks.seed_rows, "sft", settings,
                                          str(self.job.dir / "rounds" / "0" / "train"),
                                          epochs=self.cfg.train.cold_start_epochs,
                                          max_steps=self.cfg.train.cold_start_steps, seed=self.cfg.generate.seed)
        self.policy.save(0)
        return {"train": _brief(metrics)}

    async def _improve(self, round_: int) -> dict[str, Any]:
        if self.cfg.loop.arm == "control":
            return await self._train_control(round_)
        # --- GRPO: on-policy iterations inside the round (sample -> update -> sample); see selfplay.jobs.online_rl
        if self.cfg.train.algorithm == "grpo":
            from selfplay.jobs import online_rl
            return await online_rl.improve(self, round_)
        # --- end GRPO hook
        gen = self.cfg.generate
        pool = self._round_tasks(round_)
        await self.sample_training(round_, pool, f"round {round_} generate x{gen.k}")
        records = [r for r in self.store.iter_candidates(round_) if r["workflow"] == gen.workflow]
        crash_point(f"round{round_}:generated")
        verdicts = await verify_candidates(self.store, round_, records, self.tasks.by_id, gen.verifier,
                                           concurrency=gen.verify_concurrency, executor=self.executor,
                                           check=self.prm.check(round_) if self.prm else None)
        if self.prm:  # --- PRM hook: relabel by the reference, retrain the PRM (selfplay.jobs.prm_refresh)
            await self.prm.refresh(round_, self.store, records, self.tasks.by_id, self.executor)
        items = phases.scored(records, verdicts)
        rows, selection = phases.training_rows(items, self.cfg.select, self.cfg.train.algorithm, self.tasks.eval_prompts)
        if self.cfg.train.algorithm == "sft" and self.cfg.train.replay_seed:
            rows = rows + self.tasks.seed_rows
        stats = _generation_stats(records, items)
        mon = self.cfg.monitors
        audit = monitors.audit(monitors.accepted_items(items, self.cfg.select, self.cfg.train.algorithm),
                               {t.id: t.answer for t in self.tasks.train}, mon.audit_fraction,
                               self.cfg.generate.seed + round_, mon.audit_threshold)
        if audit["alarm"]:
            self.job.say(f"round {round_} verifier audit alarm: {audit['disagreement_rate']:.0%} of audited rows "
                         "fail the independent check (reward hacking?)")
        write_round_rows(self.job.dir, round_, rows, round_candidate_ids(rows, items, round_, gen.workflow))
        train = self._train(round_, rows)
        return {**stats, "selection": selection, "audit": audit, "train": train}

    async def _train_control(self, round_: int) -> dict[str, Any]:
        steps = self.cfg.loop.control_steps or []
        max_steps = steps[round_ - 1] if round_ - 1 < len(steps) else None
        write_round_rows(self.job.dir, round_, list(self.tasks.seed_rows))
        return {"train": self._train(round_, list(self.tasks.seed_rows), max_steps=max_steps, algorithm="sft")}

    def _train(self, round_: int, rows: list[dict], *, max_steps: int | None = None,
               algorithm: str | None = None) -> dict[str, Any]:
        if self.policy.has_checkpoint(round_):
            self.policy.load_round(round_)
            return {"skipped": "checkpoint present"}
        if not rows or max_steps == 0:
            self.policy.save(round_)
            return {"skipped": "no training rows", "steps": 0}
        self.job.phase(f"round {round_} train on {len(rows)} rows", 1)
        metrics = phases.train_policy(self.policy, rows, algorithm or self.cfg.train.algorithm, self.cfg.train.settings,
                                      str(self.job.dir / "rounds" / str(round_) / "train"), max_steps=max_steps,
                                      seed=self.cfg.generate.seed + round_)
        crash_point(f"round{round_}:trained")
        self.policy.save(round_)
        return _brief(metrics)

    async def _evaluate(self, round_: int) -> dict[str, Any]:
        ev, gen = self.cfg.eval, self.cfg.generate
        llm = await self._llm()
        ok = await phases.sample_chunked(
            llm, self.store, round_, self.tasks.eval, label=phases.EVAL, workflow="direct", k=ev.k,
            params_for=lambda t: self._params(t, ev.max_tokens or gen.max_tokens, ev.temperature, 10_000 + round_),
            system_prompt=gen.system_prompt, chunk_size=self._chunk(ev.k),
            on_chunk=self.job.phase(f"round {round_} evaluate x{ev.k}", len(self.tasks.eval)))
        if not ok:
            raise self.ledger.refusal or BudgetExceeded("budget refused a request", cap="usd")
        records = [r for r in self.store.iter_candidates(round_) if r["workflow"] == phases.EVAL]
        verifier = gen.verifier if self.prm is None else self.prm.eval_verifier  # PRM: eval by the reference
        verdicts = await verify_candidates(self.store, round_, records, self.tasks.by_id, verifier,
                                           concurrency=gen.verify_concurrency, executor=self.executor)
        items = phases.scored(records, verdicts)
        metrics = phases.eval_metrics(items, self.tasks.eval, ev.k)
        if self.prm:  # --- PRM hook: the PRM's best-of-N on these samples (selfplay.jobs.prm_refresh)
            metrics["prm"] = await self.prm.evaluate(round_, self.store, records, items, metrics, self.tasks.eval,
                                                     self.executor)
        return {**metrics,
                "monitors": monitors.round_monitors(self.policy, items, records, self.cfg.monitors,
                                                    self.cfg.generate.seed + round_)}

    def _guard(self, round_: int, record: dict[str, Any]) -> dict[str, Any]:
        """selfplay.pipeline.guards: reject the round and restore the last kept policy into its checkpoint slot."""
        stored = [r for r in self.store.get_rounds() if r["round"] == round_ and r["phase"] == guards.GUARDED]
        if stored:  # resumed after the decision: the same record, restore again (idempotent)
            record = {k: v for k, v in stored[0].items() if k != "phase"}
        else:
            done = [r for r in self.store.get_rounds() if r["phase"] == DONE]
            previous = guards.last_kept(done, round_)
            reasons = guards.check_round(record, previous, self.cfg.guards)
            if not reasons:
                return record
            record = guards.rejected_record(record, previous, reasons)
            self.store.put_round(round_, guards.GUARDED, record)
            crash_point(f"round{round_}:guarded")
        self.policy.load_round(round_ - 1)
        self.policy.save(round_)
        self.job.say(f"round {round_} rejected, round {record['kept_round']}'s policy kept: "
                     + "; ".join(record["reasons"]))
        return record

    async def sample_training(self, round_: int, tasks: list, description: str) -> None:
        """Sample K per task of `tasks` with the policy as it is now (the round's workflow, adaptive K, verification
        as sampled), stored in the run store; a budget refusal raises. Used by SFT/DPO rounds and GRPO's slices."""
        gen = self.cfg.generate
        llm = await self._llm()
        ok = await phases.sample_chunked(
            llm, self.store, round_, tasks, label=gen.workflow, workflow=gen.workflow, k=gen.k,
            params_for=lambda t: self._params(t, gen.max_tokens, gen.temperature, round_), system_prompt=gen.system_prompt,
            options=gen.workflow_options, chunk_size=self._chunk(max(gen.k, gen.batch or gen.k)),
            check_for=self._feedback_check, adaptive=gen, verifier=gen.verifier, executor=self.executor,
            verify_concurrency=gen.verify_concurrency, on_chunk=self.job.phase(description, len(tasks)))
        if not ok:
            raise self.ledger.refusal or BudgetExceeded("budget refused a request", cap="usd")

    # --- helpers ---------------------------------------------------------------------------------
    async def _llm(self) -> MeteredLLM:
        backend = await self.policy.serve()  # a served policy publishes the round first (ensure() on resume)
        return MeteredLLM(backend, price=None, ledger=self.ledger, cache=self.policy.request_cache(self.store))

    def _params(self, task, max_tokens: int, temperature: float, salt: int) -> SamplingParams:
        seed = random.Random(f"{self.cfg.generate.seed}:{salt}:{task.id}").randrange(2 ** 31)
        return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=self.cfg.generate.top_p,
                              stop=self.cfg.generate.stop or None, seed=seed)

    def _feedback_check(self, task):
        """The `feedback` workflow's check for `task`: the round's verifier against its reference (else None)."""
        if not spec(self.cfg.generate.workflow).needs_check:
            return None
        check = get_check(self.cfg.generate.verifier)

        async def feedback_check(answer: str) -> CheckResult:
            verdict = await run_check(check, {"final_answer": answer}, task, self.executor)
            return CheckResult(passed=verdict.passed, reason=verdict.reason, error=verdict.error)

        return feedback_check

    def _chunk(self, k: int) -> int:
        return max(1, self.cfg.local.max_batch_rows // k)

    def _round_tasks(self, round_: int) -> list:
        per_round = self.cfg.tasks.per_round
        if per_round is None or per_round >= len(self.tasks.train):
            return list(self.tasks.train)
        return random.Random(f"{self.cfg.generate.seed}:pool:{round_}").sample(self.tasks.train, per_round)


def _generation_stats(records: list[dict[str, Any]], items: list) -> dict[str, Any]:
    passed = [c for c in items if c.passed]
    tasks = {r["task_id"] for r in records}
    solved = {c.task_id for c in passed}
    tokens = sum(r["usage"]["completion_tokens"] for r in records)
    passed_keys = {(c.task_id, c.sample_index) for c in passed}
    verified_tokens = sum(r["usage"]["completion_tokens"] for r in records
                          if (r["task_id"], r["sample_index"]) in passed_keys)
    return {"samples": len(records), "passed": len(passed), "yield": len(passed) / len(records) if records else 0.0,
            "coverage": len(solved) / len(tasks) if tasks else 0.0, "completion_tokens": tokens,
            "verified_tokens": verified_tokens,
            "prompt_tokens": sum(r["usage"]["prompt_tokens"] for r in records)}


def _brief(metrics: dict[str, Any]) -> dict[str, Any]:
    keep = ("steps", "final_loss", "loss", "tokens_per_s", "examples", "pairs", "groups", "train_seconds", "skipped",
            "rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/accuracy", "chosen_logp_delta",
            "clip_fraction", "kl", "reward_mean", "groups_trained", "sequences", "grad_norm")
    return {k: metrics[k] for k in keep if k in metrics}


def _round_line(record: dict[str, Any]) -> str:
    parts = [f"round {record['round']}", f"pass@1 {record.get('eval_pass@1', 0):.3f}",
             f"pass@k {record.get('eval_pass@k', 0):.3f}", f"maj@k {record.get('eval_maj@k', 0):.3f}"]
    if "yield" in record:
        parts.append(f"yield {record['yield']:.3f}")
    parts.append(f"{record.get('seconds', 0):.1f}s")
    return "  ".join(parts)
