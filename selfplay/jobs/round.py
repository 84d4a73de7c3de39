"""One round of `selfplay run`: cold start or improve (by the algorithm registry), evaluate, guard, record.

What it is for: `RoundContext` holds what a round needs (config, run store, ledger, policy, tasks, executor, PRM) and
the phases every algorithm shares: sampling the round's tasks with the policy as it is now, verifying them, the
decontaminated training rows, the audit, writing `rounds/R/train.jsonl`, training and saving. `run_round` is
re-entrant: a phase whose result is in the store or on disk is not done again, so `kill -9` anywhere then the same
command continues where it stopped (with the local backend, to the same weights).
What it does not do: know any algorithm by name (`selfplay.jobs.algorithms` does), or set the job up / loop over rounds
(`selfplay.jobs.loop`).
"""

from __future__ import annotations

import random
import time
from typing import Any

from agents.llm.metered import MeteredLLM
from agents.llm.types import BudgetExceeded, SamplingParams
from agents.money.ledger import BudgetLedger
from agents.workflows.registry import spec
from selfplay.core.candidate import Candidate
from selfplay.core.crashpoints import crash_point
from selfplay.core.store import RunStore
from selfplay.jobs.algorithms import Algorithm, algorithm_for, get as get_algorithm
from selfplay.jobs.prm_refresh import LoopPRM
from selfplay.pipeline import guards, monitors
from selfplay.pipeline.export import write_round_rows
from selfplay.pipeline.llm import build_metered
from selfplay.pipeline.metrics import by_task, eval_metrics
from selfplay.pipeline.report import write_report
from selfplay.pipeline.sample import EVAL, SamplingSpec, feedback_check, sample_tasks
from selfplay.pipeline.select import contaminated
from selfplay.pipeline.verify import get_check, verify_candidates
from selfplay.policy import Policy
from selfplay.tasks.loop import LoopTasks, check_fits

DONE = "done"
COLD_START = get_algorithm("sft")  # round 0 trains the seed rows with SFT whatever the algorithm
# The cold start's own defaults, whatever the algorithm of the rounds: TrainConfig's lr 1e-4 left the tiny models at
# pass@1 0.000 after a GRPO config's cold start (issue 26); 1e-3 is what the demo's cold start measured.
COLD_START_DEFAULTS = {"lr": 1e-3}


class RoundContext:
    """What one round needs, and its phases; `run_round` is re-entrant: finished phases are skipped on resume."""

    def __init__(self, job: Any, store: RunStore, ledger: BudgetLedger, policy: Policy, tasks: LoopTasks,
                 executor) -> None:
        self.job, self.cfg, self.store, self.ledger = job, job.config, store, ledger
        self.policy, self.tasks, self.executor = policy, tasks, executor
        # verifier = "prm": its check per round, retraining, best-of-N (selfplay.jobs.prm_refresh)
        self.prm = LoopPRM(self.cfg, job.dir, job.phase) if self.cfg.prm is not None else None

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
        self._check_fits()
        metrics: dict[str, Any] = {"skipped": "no seed rows"}
        if self.tasks.seed_rows and self.cfg.train.cold_start_epochs:
            self.job.phase(f"round 0 cold-start SFT on {len(self.tasks.seed_rows)} rows", 1)
            settings = {**COLD_START_DEFAULTS,  # under the user's shared settings and settings.sft
                        **{k: v for k, v in self.cfg.train.settings.items() if k not in ("max_steps", "epochs")}}
            metrics = COLD_START.train_step(self.policy, self.tasks.seed_rows, settings,
                                            str(self.job.dir / "rounds" / "0" / "train"),
                                            epochs=self.cfg.train.cold_start_epochs,
                                            max_steps=self.cfg.train.cold_start_steps, seed=self.cfg.generate.seed)
        self.policy.save(0)
        return {"train": brief(metrics)}

    def _check_fits(self) -> None:
        """Seed solutions and references against max_tokens, by the policy's tokenizer, before anything is spent."""
        tokenizer = getattr(self.policy, "tokenizer", None)
        if tokenizer is None:
            return
        gen = self.cfg.generate
        check_fits(self.tasks, lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                   gen.max_tokens, self.cfg.eval.max_tokens or gen.max_tokens)

    async def _improve(self, round_: int) -> dict[str, Any]:
        return await algorithm_for(self.cfg).improve(self, round_)

    # --- what algorithms call (selfplay.jobs.algorithms) ---------------------------------------------
    async def verify_training(self, round_: int, candidates: list[Candidate]) -> list[Candidate]:
        """The round's verifier (the PRM's check with verifier = "prm") on `candidates`: the ok ones, verified."""
        gen = self.cfg.generate
        verified = await verify_candidates(self.store, round_, candidates, self.tasks.by_id, gen.verifier,
                                           concurrency=gen.verify_concurrency, executor=self.executor,
                                           check=self.prm.check(round_) if self.prm else None)
        return [c for c in verified if c.verdict is not None]

    def training_rows(self, algorithm: Algorithm, items: list[Candidate]) -> tuple[list[dict], dict[str, Any]]:
        """The algorithm's rows from the verified candidates, after n-gram decontamination against the eval set."""
        select = self.cfg.select
        dropped = 0
        if select.decontaminate_n:
            flags = contaminated([c.text for c in items], self.tasks.eval_prompts, select.decontaminate_n)
            dropped = sum(flags)
            items = [c for c, bad in zip(items, flags) if not bad]
        groups = by_task(items)
        rows = algorithm.rows(groups, select)
        # the "no signal" measure: the share of tasks whose candidates teach the algorithm anything (report flags it)
        return rows, {"decontaminated": dropped, "rows": len(rows), "signal": algorithm.signal(groups)}

    def audit(self, round_: int, positives: list[Candidate]) -> dict[str, Any]:
        """A fraction of the round's positives re-checked by an independent rule (selfplay.pipeline.monitors)."""
        mon = self.cfg.monitors
        found = monitors.audit(positives, {t.id: t.answer for t in self.tasks.train}, mon.audit_fraction,
                               self.cfg.generate.seed + round_, mon.audit_threshold)
        if found["alarm"]:
            self.job.say(f"round {round_} verifier audit alarm: {found['disagreement_rate']:.0%} of audited rows "
                         "fail the independent check (reward hacking?)")
        return found

    def write_rows(self, round_: int, rows: list[dict]) -> None:
        write_round_rows(self.job.dir, round_, rows)

    def train(self, round_: int, rows: list[dict], algorithm: Algorithm, *, max_steps: int | None = None
              ) -> dict[str, Any]:
        """Train the round's policy with `algorithm` and save it (a checkpoint already there is loaded instead)."""
        if self.policy.has_checkpoint(round_):
            self.policy.load_round(round_)
            return {"skipped": "checkpoint present"}
        if not rows or max_steps == 0:
            self.policy.save(round_)
            return {"skipped": "no training rows", "steps": 0}
        self.job.phase(f"round {round_} train on {len(rows)} rows", 1)
        metrics = algorithm.train_step(self.policy, rows, self.cfg.train.settings,
                                       str(self.job.dir / "rounds" / str(round_) / "train"), max_steps=max_steps,
                                       seed=self.cfg.generate.seed + round_)
        crash_point(f"round{round_}:trained")
        self.policy.save(round_)
        return brief(metrics)

    async def _evaluate(self, round_: int) -> dict[str, Any]:
        ev, gen = self.cfg.eval, self.cfg.generate
        llm = await self._llm()
        spec = SamplingSpec(workflow="direct", k=ev.k, system_prompt=gen.system_prompt)
        ok = await sample_tasks(
            llm, self.store, round_, self.tasks.eval, spec, label=EVAL,
            params_for=lambda t: self._params(t, ev.max_tokens or gen.max_tokens, ev.temperature, 10_000 + round_),
            chunk_size=self._chunk(ev.k), on_chunk=self.job.phase(f"round {round_} evaluate x{ev.k}", len(self.tasks.eval)))
        if not ok:
            raise self.ledger.refusal or BudgetExceeded("budget refused a request", cap="usd")
        records = list(self.store.iter_candidates(round_, EVAL))
        verifier = gen.verifier if self.prm is None else self.prm.eval_verifier  # PRM: eval by the reference
        verified = await verify_candidates(self.store, round_, records, self.tasks.by_id, verifier,
                                           concurrency=gen.verify_concurrency, executor=self.executor)
        items = [c for c in verified if c.verdict is not None]
        metrics = eval_metrics(items, [t.id for t in self.tasks.eval], ev.k)
        if self.prm:  # the PRM's best-of-N on these samples (selfplay.jobs.prm_refresh)
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
                     + "; ".join(record["reasons"]) + f". Hint: {record.get('hint') or guards.hint(record['reasons'])}")
        return record

    async def sample_training(self, round_: int, tasks: list, description: str) -> None:
        """Sample K per task of `tasks` with the policy as it is now (the round's workflow, adaptive K, verification
        as sampled), stored in the run store; a budget refusal raises. Used by SFT/DPO rounds and GRPO's slices."""
        gen = self.cfg.generate
        llm = await self._llm()
        spec = SamplingSpec.of(gen, adaptive=True)
        ok = await sample_tasks(
            llm, self.store, round_, tasks, spec, label=gen.workflow,
            params_for=lambda t: self._params(t, gen.max_tokens, gen.temperature, round_),
            chunk_size=self._chunk(max(gen.k, gen.batch or gen.k)), check_for=self._feedback_check,
            executor=self.executor, on_chunk=self.job.phase(description, len(tasks)))
        if not ok:
            raise self.ledger.refusal or BudgetExceeded("budget refused a request", cap="usd")

    # --- helpers ---------------------------------------------------------------------------------
    async def _llm(self) -> MeteredLLM:
        backend = await self.policy.serve()  # a served policy publishes the round first (ensure() on resume)
        return build_metered(None, backend, None, self.ledger, self.policy.request_cache(self.store))

    def _params(self, task, max_tokens: int, temperature: float, salt: int) -> SamplingParams:
        seed = random.Random(f"{self.cfg.generate.seed}:{salt}:{task.id}").randrange(2 ** 31)
        return SamplingParams(max_tokens=max_tokens, temperature=temperature, top_p=self.cfg.generate.top_p,
                              stop=self.cfg.generate.stop or None, seed=seed)

    def _feedback_check(self, task):
        """The `feedback` workflow's check for `task`: the round's verifier against its reference (else None)."""
        if not spec(self.cfg.generate.workflow).needs_check:
            return None
        return feedback_check(get_check(self.cfg.generate.verifier), task, self.executor)

    def _chunk(self, k: int) -> int:
        return max(1, self.cfg.local.max_batch_rows // k)

    def round_tasks(self, round_: int) -> list:
        """The round's pool of training tasks: all of them, or `[tasks] per_round` drawn by the round's seed."""
        per_round = self.cfg.tasks.per_round
        if per_round is None or per_round >= len(self.tasks.train):
            return list(self.tasks.train)
        return random.Random(f"{self.cfg.generate.seed}:pool:{round_}").sample(self.tasks.train, per_round)


def brief(metrics: dict[str, Any]) -> dict[str, Any]:
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
