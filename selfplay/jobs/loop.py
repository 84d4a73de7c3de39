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
`improvement_problem(rounds, config)` says when a finished loop learned nothing (no round trained on anything, or
held-out pass@1 never rose above round 0's): `selfplay run` then exits 5 with that one message (`NoImprovement`).
What it does not do: start the server of a served policy (it must be running at [policy] url).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agents.llm.types import BudgetExceeded
from selfplay.core.errors import BudgetStop, SelfplayError, UserError
from selfplay.jobs.round import DONE, RoundContext
from selfplay.pipeline.export import write_candidates
from selfplay.pipeline.llm import set_torch_threads
from selfplay.tasks.loop import LoopTasks, load_loop_tasks
from selfplay.policy import build_policy
from selfplay.pipeline.report import write_report
from selfplay.config.run import PINNED, RunConfig
from selfplay.jobs.setup import OpenRun, open_run
from selfplay.core.store import RunStore
from selfplay.core.files import write_json
from selfplay.tracking import open_tracker
from trainer.progress import listening



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
            set_torch_threads(self.config.local.threads)
            executor = ThreadPoolExecutor(max_workers=self.config.generate.verify_concurrency,
                                          thread_name_prefix="selfplay-verify")
            try:
                return await self._run(run, tasks, executor)
            finally:  # on Ctrl-C the checks still queued are dropped (their candidates are re-checked on resume)
                executor.shutdown(wait=True, cancel_futures=True)

    async def _run(self, run: OpenRun, tasks: LoopTasks, executor) -> list[dict[str, Any]]:
        store, ledger = run.store, run.ledger
        policy = build_policy(self.config, self.dir)
        await policy.prepare()  # a served policy's server answers before anything is spent
        ctx = RoundContext(self, store, ledger, policy, tasks, executor)
        self.tracker = open_tracker(self.config.tracking.names, self.dir, self.config.model_dump(mode="json"))
        hook = getattr(self.progress, "training", None)
        shown = listening(hook) if hook is not None else contextlib.nullcontext()
        try:
            shown.__enter__()  # every training phase's step, loss, tokens/s and ETA on the live display
            for round_ in range(0, self.config.loop.rounds + 1):
                if _phase(store, round_) != DONE:
                    await ctx.run_round(round_)
                ledger.checkpoint_time()
        except BudgetExceeded as exc:
            ledger.checkpoint_time()
            self._finish(store)
            raise BudgetStop(f"{exc.message}; the round state is recorded, raise [budget] and run again") from exc
        finally:
            shown.__exit__(None, None, None)
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


EXIT_NO_IMPROVEMENT = 5


class NoImprovement(SelfplayError):
    """A loop that ran every round but learned nothing (exit 5): its report and checkpoints are written."""

    exit_code = EXIT_NO_IMPROVEMENT


def improvement_problem(rounds: list[dict[str, Any]], config: RunConfig) -> str | None:
    """What a finished loop failed to do, with what to change (None: it trained and held-out pass@1 rose).

    Checked for the self-improving arm with `[loop] require_improvement` (the control arm only replays the seed set).
    """
    if not config.loop.require_improvement or config.loop.arm == "control" or len(rounds) < 2:
        return None
    first, later = rounds[0], rounds[1:]
    problems = []
    idle = [r for r in later if _trained_nothing(r)]
    if len(idle) == len(later):
        problems.append("no round trained on anything (" + "; ".join(f"round {r['round']}: {_why_no_rows(r, config)}"
                                                                      for r in idle) + ")")
    start = first.get("eval_pass@1") or 0.0
    kept = [r for r in later if not r.get("rejected")]
    best = max(kept, key=lambda r: r.get("eval_pass@1") or 0.0) if kept else None
    if best is None or (best.get("eval_pass@1") or 0.0) <= start:
        rejected = [r["round"] for r in later if r.get("rejected")]
        problems.append(f"held-out pass@1 never rose above round 0's {start:.3f}"
                        + (f" (best kept: {best['eval_pass@1']:.3f} in round {best['round']})" if best else "")
                        + (f"; rounds {', '.join(map(str, rejected))} were rejected by the guards" if rejected else ""))
    if not problems:
        return None
    return ("the loop learned nothing: " + "; ".join(problems) + ". " + _advice(first, config)
            + " The rounds, report and checkpoints are written; set [loop] require_improvement = false to accept a "
            "run that only exercises the mechanics")


def _trained_nothing(record: dict[str, Any]) -> bool:
    train = record.get("train") or {}
    return train.get("skipped") == "no training rows" or ("skipped" not in train and not train.get("steps"))


def _why_no_rows(record: dict[str, Any], config: RunConfig) -> str:
    samples, passed = record.get("samples") or 0, record.get("passed")
    if passed == 0:
        return f"none of {samples} samples passed the verifier"
    if passed is not None and passed == samples:
        return f"all {samples} samples passed (nothing to prefer or to learn)"
    if config.train.algorithm in ("dpo", "grpo"):
        return "no task had both a passing and a failing sample (no signal to compare)"
    return "no training rows"


def _advice(first: dict[str, Any], config: RunConfig) -> str:
    """What to change: judged from round 0 (a policy that never passes has nothing to select from)."""
    if (first.get("eval_pass@1") or 0.0) == 0.0 and (first.get("eval_pass@k") or 0.0) == 0.0:
        return ("Round 0 never produced a passing answer, so there was nothing to learn from: give it a cold start "
                "that works (more seed rows or [train] cold_start_steps, lr 1e-3 on the tiny models), check that "
                "[generate] max_tokens fits a whole answer, or start from a stronger model.")
    return ("Sample more per task ([generate] k), use more training tasks per round, train fewer steps or at a lower "
            "lr per round, or run more rounds; the report's guards section names why rounds were rejected.")


def _phase(store: RunStore, round_: int) -> str | None:
    for record in store.get_rounds():
        if record["round"] == round_:
            return record["phase"]
    return None
