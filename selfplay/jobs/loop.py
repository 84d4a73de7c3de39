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

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agents.llm.types import BudgetExceeded
from selfplay.core.errors import BudgetStop, UserError
from selfplay.jobs.round import DONE, RoundContext
from selfplay.pipeline.export import write_candidates
from selfplay.tasks.loop import LoopTasks, load_loop_tasks
from selfplay.policy import build_policy
from selfplay.pipeline.report import write_report
from selfplay.config.run import PINNED, RunConfig
from selfplay.jobs.setup import OpenRun, open_run
from selfplay.core.store import RunStore
from selfplay.core.files import write_json
from selfplay.tracking import open_tracker



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
        ctx = RoundContext(self, store, ledger, policy, tasks, executor)
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
