"""What every algorithm of the loop provides, and the offline round most of them share.

What it is for: `Algorithm` is one registry entry: `name`, its trainer function (`train_step`), its trainer
defaults (`defaults`, between the shared `[train] settings` and `settings.<name>`), its rows from the round's
verified candidates (`rows`), its positives for the audit (`positives`), and `improve(ctx, round)`: the round's
work between loading the previous policy and evaluating. The default `improve` is the offline round: sample K per
task of the round's pool, verify, select rows, audit, write `rounds/R/train.jsonl`, train once.
What it does not do: evaluate, guard or record the round (`selfplay.jobs.round`), or the loss math (`trainer`).
"""

from __future__ import annotations

from typing import Any, Callable

from selfplay.core.candidate import Candidate
from selfplay.core.crashpoints import crash_point
from selfplay.pipeline.metrics import generation_stats
from selfplay.pipeline.select import has_pass, signal
from selfplay.config.train import train_config
from trainer.config import TrainConfig

class Algorithm:
    name: str = ""
    defaults: dict[str, Any] = {}
    replays_seed: bool = False   # `[train] replay_seed` adds the seed rows to the round's rows

    # --- what the algorithm trains on ----------------------------------------------------------------
    def rows(self, groups: dict[str, list[Candidate]], select: Any) -> list[dict[str, Any]]:
        """Training rows (each with `candidate_ids`) from the verified candidates of each task."""
        raise NotImplementedError

    def has_signal(self, group: list[Candidate]) -> bool:
        """Whether one task's candidates teach this algorithm anything (here: something passed, as for SFT)."""
        return has_pass(group)

    def signal(self, groups: dict[str, list[Candidate]]) -> dict[str, Any]:
        """The round's "no signal" measure: how many tasks' groups carry a learning signal (`has_signal`), their share,
        and `no_signal` when it is below `selfplay.pipeline.select.NO_SIGNAL_SHARE` (the report flags it)."""
        return signal(groups.values(), self.has_signal)

    def positives(self, items: list[Candidate], select: Any) -> list[Candidate]:
        """The candidates the round trains on as positives (what the audit re-checks)."""
        return [c for c in items if c.passed]

    # --- how it trains --------------------------------------------------------------------------------
    def trainer(self) -> Callable[..., dict[str, Any]]:
        raise NotImplementedError

    def train_config(self, settings: dict[str, Any], *, max_steps: int | None = None, epochs: int | None = None,
                     seed: int = 0) -> TrainConfig:
        """The TrainConfig of one training call: shared settings < the algorithm's defaults < `settings.<name>`."""
        return train_config(self.name, self.defaults, settings, max_steps=max_steps, epochs=epochs, seed=seed)

    def train_step(self, policy: Any, rows: list[dict], settings: dict[str, Any], out_dir: str, *,
                   max_steps: int | None = None, epochs: int | None = None, seed: int = 0) -> dict[str, Any]:
        """Train the in-memory policy on `rows`; returns the trainer's metrics."""
        config = self.train_config(settings, max_steps=max_steps, epochs=epochs, seed=seed)
        policy.model.train()
        metrics = self.trainer()(policy.model, policy.tokenizer, rows, config, out_dir=out_dir)
        policy.model.eval()
        return metrics

    # --- the round --------------------------------------------------------------------------------------
    async def improve(self, ctx: Any, round_: int) -> dict[str, Any]:
        """The offline round: sample the pool with the previous round's policy, verify, select, audit, train."""
        gen = ctx.cfg.generate
        await ctx.sample_training(round_, ctx.round_tasks(round_), f"round {round_} generate x{gen.k}")
        candidates = list(ctx.store.iter_candidates(round_, gen.workflow))
        crash_point(f"round{round_}:generated")
        verified = await ctx.verify_training(round_, candidates)
        if ctx.prm:  # verifier = "prm": relabel by the reference, retrain the PRM (selfplay.jobs.prm_refresh)
            await ctx.prm.refresh(round_, ctx.store, candidates, ctx.tasks.by_id, ctx.executor)
        rows, selection = ctx.training_rows(self, verified)
        if self.replays_seed and ctx.cfg.train.replay_seed:
            rows = rows + ctx.tasks.seed_rows
        audit = ctx.audit(round_, self.positives(verified, ctx.cfg.select))
        ctx.write_rows(round_, rows)
        train = ctx.train(round_, rows, self)
        return {**generation_stats(candidates, verified), "selection": selection, "audit": audit, "train": train}
