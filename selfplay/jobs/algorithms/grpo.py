"""GRPO rounds: sample -> verify -> update, in one or more iterations per round, resumable after `kill -9`.

What it is for: `[train] algorithm = "grpo"` rounds of `selfplay run`. The round's task pool is split into
`[train] iterations` slices (default 1: the whole pool sampled once by the previous round's policy, then the round's
steps, as the other algorithms do; > 1: on-policy iterations). Each iteration samples K answers per task of its
slice with the CURRENT weights (the policy's in-memory model, reloaded into the local backend), verifies them, builds
groups with advantages, and takes its share of the round's optimizer steps, so the round spends the samples and steps
an offline round would (K per task of the pool; `max_steps` split between iterations). The defaults (`GRPO.defaults`,
measured at seeds 0-2, docs/trainer.md "GRPO that learns at every seed") weigh the failed answers at 0.1
(`negative_advantage_scale`), do not clip a passed answer's ratio from above (`clip_eps_high` 10), and take each
optimizer step over 4 micro-batches (`grad_accum`), beside the seed rows as an NLL anchor.
Durable per iteration (when there are several): its samples and verdicts go to the run store (its slice's tasks, disjoint from every other
iteration's and from the eval label), then its weights and the metrics of iterations 0..I to
`checkpoints/round-R.iter-I` (written beside, then renamed), before the next iteration samples; a resumed run loads
the newest complete iteration and equals an uninterrupted run.
Dynamic sampling (DAPO): an iteration whose groups with mixed rewards are fewer than `[train] signal_target` x its
tasks draws more tasks (training tasks outside the round's pool, seeded order) with the same weights, up to
`signal_max_extra` x its samples more; they are stored, counted and priced like every sample.
What it does not do: the GRPO math (`trainer.grpo`), or the round's evaluation and guards (`selfplay.jobs.round`).
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Callable

from selfplay.core.candidate import Candidate
from selfplay.core.crashpoints import crash_point
from selfplay.core.errors import UserError
from selfplay.jobs.algorithms.base import Algorithm
from selfplay.pipeline.datasets import rl_row
from selfplay.pipeline.llm import load_policy_model
from selfplay.pipeline.metrics import generation_stats
from selfplay.pipeline.select import mixed_rewards, rl_group, topup_tasks
from selfplay.policy import LocalPolicy

DEFAULT_ITERATIONS = 1  # docs/trainer.md: one sampling per round learned at every seed; 10 on-policy did not
METRICS_FILE = "online_rl.json"
OPTIMIZER_FILE = "optimizer.pt"
# trainer metrics kept per iteration (the means over its steps)
ITERATION_KEYS = ("steps", "clip_fraction", "kl", "kl_to_sampler", "entropy", "logp_delta", "grad_norm", "train_loss",
                  "groups_trained", "sequences", "anchor_sequences")


class GRPO(Algorithm):
    name = "grpo"
    # Dr.GRPO advantages; the seed rows as an NLL anchor (without it SFT's lr collapses the policy onto its own
    # outputs); failed answers at 0.1 (at full weight, pushing the sampled wrong answers down spreads their mass over
    # unsampled ones: entropy up, pass@1 down); no upper clip (100 steps on one sampling would stop a passed answer
    # once 20% likelier); 4 micro-batches per step (a step of 64 sequences holds ~8 passed answers: too noisy at
    # lr 1e-3). docs/trainer.md "GRPO that learns at every seed" has the measurements.
    defaults = {"lr": 1e-3, "normalize_std": False, "max_epochs": 20.0, "warmup_steps": 10, "min_lr_ratio": 1.0,
                "anchor_coef": 1.0, "clip_eps": 0.2, "clip_eps_high": 10.0, "negative_advantage_scale": 0.1,
                "grad_accum": 4}

    def rows(self, groups: dict[str, list[Candidate]], select: Any) -> list[dict[str, Any]]:
        return [rl_row(*found) for g in groups.values() if (found := rl_group(g))]

    def has_signal(self, group: list[Candidate]) -> bool:
        return mixed_rewards(group)  # all-equal rewards: zero advantages, no gradient

    def trainer(self) -> Callable[..., dict[str, Any]]:
        from trainer.grpo import train_grpo
        return train_grpo

    async def improve(self, ctx: Any, round_: int) -> dict[str, Any]:
        """One GRPO round: iterations of sample -> verify -> update on slices of the pool, then the round's record."""
        cfg, gen = ctx.cfg, ctx.cfg.generate
        slices = task_slices(ctx.round_tasks(round_), iterations_of(cfg))
        if len(slices) > 1 and not isinstance(ctx.policy, LocalPolicy):
            raise UserError("[train] iterations: on-policy GRPO samples each iteration with the weights as they train, "
                            "which needs [policy] mode = \"local\"; set [train] iterations = 1 to sample once per round "
                            "from the served policy")
        shares = step_shares(self.train_config(cfg.train.settings).max_steps, len(slices))
        carry: dict[str, Any] = {}  # one AdamW for the round's iterations (trainer.loop.train_loop's optimizer_carry)
        history = _resume(ctx.policy, round_, carry)
        if ctx.policy.has_checkpoint(round_):
            ctx.policy.load_round(round_)
        else:
            for i in range(len(history), len(slices)):
                history.append(await _iteration(self, ctx, round_, i, len(slices), slices[i], shares[i], history, carry))
            crash_point(f"round{round_}:trained")
            ctx.policy.save(round_)
        # the round as a whole, from the store: every iteration's candidates (their verdicts are reused, not re-run)
        candidates = list(ctx.store.iter_candidates(round_, gen.workflow))
        verified = await ctx.verify_training(round_, candidates)
        rows, selection = ctx.training_rows(self, verified)
        audit = ctx.audit(round_, self.positives(verified, cfg.select))
        ctx.write_rows(round_, rows)
        train = {**_round_train(history), "iterations": len(history)}
        return {**generation_stats(candidates, verified), "selection": selection, "audit": audit, "train": train,
                "online_rl": history}


def iterations_of(config: Any) -> int:
    return config.train.iterations or DEFAULT_ITERATIONS


def task_slices(pool: list, iterations: int) -> list[list]:
    """`iterations` consecutive slices of the pool, sizes differing by at most one (fewer when the pool is small)."""
    n = max(1, min(iterations, len(pool)))
    return [pool[i * len(pool) // n:(i + 1) * len(pool) // n] for i in range(n)]


def step_shares(total: int | None, iterations: int) -> list[int | None]:
    """The round's `max_steps` split between iterations (they sum to it); None: each iteration one pass (epochs)."""
    if total is None:
        return [None] * iterations
    return [total * (i + 1) // iterations - total * i // iterations for i in range(iterations)]


def iteration_dir(policy: Any, round_: int, iteration: int) -> Path:
    return policy.checkpoint(round_).with_name(f"round-{round_}.iter-{iteration}")


async def _iteration(algorithm: "GRPO", ctx: Any, round_: int, i: int, n: int, tasks: list, steps: int | None,
                     history: list[dict[str, Any]], carry: dict[str, Any]) -> dict[str, Any]:
    """Sample the slice with the current weights, verify, train its share of steps, save; returns its metrics."""
    gen = ctx.cfg.generate
    # policy.serve() inside: the backend now serves the weights as they are after iteration i-1
    await ctx.sample_training(round_, tasks, f"round {round_} iteration {i + 1}/{n} generate x{gen.k}")
    ids = {t.id for t in tasks}
    records = [c for c in ctx.store.iter_candidates(round_, gen.workflow) if c.task_id in ids]
    crash_point(f"round{round_}:iter{i}:generated")
    items = await ctx.verify_training(round_, records)
    rows, _ = ctx.training_rows(algorithm, items)
    signal_before = len(rows)
    reserve = topup_reserve(ctx, round_)[sum(h.get("topup_tasks", 0) for h in history):]
    rows, drawn, extra = await _top_up(algorithm, ctx, round_, f"iteration {i + 1}/{n}", tasks, rows, records, items,
                                       reserve)
    metrics: dict[str, Any] = {"steps": 0}
    if rows and steps != 0:
        ctx.job.phase(f"round {round_} iteration {i + 1}/{n} train on {len(rows)} groups", 1)
        metrics = train_iteration(algorithm, ctx.policy, rows, ctx.cfg.train.settings,
                                  str(ctx.job.dir / "rounds" / str(round_) / "train" / f"iter-{i}"),
                                  steps=steps, seed=gen.seed + 1000 * round_ + i, carry=carry,
                                  anchor_rows=ctx.tasks.seed_rows if ctx.cfg.train.replay_seed else None)
    crash_point(f"round{round_}:iter{i}:trained")
    tokens = [c.usage.completion_tokens for c in records if c.ok]
    entry = {"iteration": i, "tasks": len(tasks), "samples": len(records), "groups": len(rows),
             "signal_groups": signal_before, "topup_tasks": len(drawn), "topup_samples": extra,
             "reward_mean": sum(c.score for c in items) / len(items) if items else 0.0,
             "length": sum(tokens) / len(tokens) if tokens else 0.0,
             **{k: metrics[k] for k in ITERATION_KEYS if k in metrics}}
    if n > 1:  # a one-iteration round is the round: its checkpoint is the round's (a kill before it re-trains the
        _save_iteration(ctx.policy, round_, i, [*history, entry], carry)  # stored samples: the same weights)
    return entry


def topup_reserve(ctx: Any, round_: int) -> list:
    """The tasks dynamic sampling draws from: the training tasks outside the round's pool, in a seeded order (the
    same on resume; each iteration continues where the previous one stopped)."""
    pool = {t.id for t in ctx.round_tasks(round_)}
    rest = [t for t in ctx.tasks.train if t.id not in pool]
    random.Random(f"{ctx.cfg.generate.seed}:topup:{round_}").shuffle(rest)
    return rest


def topup_limits(train: Any, tasks: int, k: int) -> tuple[int, int]:
    """(target groups with mixed rewards, cap on extra samples) of an iteration over `tasks` tasks at K = `k`:
    `[train] signal_target` x its tasks and `signal_max_extra` x its samples (0 turns dynamic sampling off)."""
    return math.ceil(train.signal_target * tasks - 1e-9), int(train.signal_max_extra * tasks * k)


async def _top_up(algorithm: "GRPO", ctx: Any, round_: int, name: str, tasks: list, rows: list[dict[str, Any]],
                  records: list[Candidate], items: list[Candidate], reserve: list
                  ) -> tuple[list[dict[str, Any]], list, int]:
    """DAPO's dynamic sampling: groups whose rewards are all equal teach nothing (`rl_group` drops them), so while the
    iteration holds fewer groups with mixed rewards than its target, draw more tasks from `reserve` with the current
    weights (`ctx.sample_training`: stored, counted and priced like every sample) until the target or the cap on
    extra samples is reached. Extends `records` and `items` in place; returns (rows, tasks drawn, extra samples)."""
    gen = ctx.cfg.generate
    target, max_extra = topup_limits(ctx.cfg.train, len(tasks), gen.k)
    drawn: list = []
    extra = 0
    while wanted := topup_tasks(len(rows), target, len(tasks) + len(drawn), extra, max_extra, gen.k,
                                len(reserve) - len(drawn)):
        wave = reserve[len(drawn):len(drawn) + wanted]
        drawn += wave
        await ctx.sample_training(round_, wave, f"round {round_} {name} top-up: {len(wave)} tasks x{gen.k} "
                                                f"({len(rows)}/{target} groups with mixed rewards)")
        ids = {t.id for t in wave}
        new = [c for c in ctx.store.iter_candidates(round_, gen.workflow) if c.task_id in ids]
        extra += len(new)
        records += new
        items += await ctx.verify_training(round_, new)
        rows, _ = ctx.training_rows(algorithm, items)
    return rows, drawn, extra


def train_iteration(algorithm: "GRPO", policy: Any, rows: list[dict[str, Any]], settings: dict[str, Any], out_dir: str, *,
                    steps: int | None, seed: int, carry: dict[str, Any],
                    anchor_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """GRPO on one iteration's groups, continuing the round's AdamW (its moments are in `carry`); with
    `anchor_rows` (the seed rows, `[train] replay_seed`) and `anchor_coef` > 0, a per-token NLL on them too."""
    from trainer.grpo import train_grpo

    config = algorithm.train_config(settings, max_steps=steps, seed=seed)
    if config.kl_coef and "reference" not in carry:  # the KL anchor: the cold start (round 0), loaded once a round
        carry["reference"] = load_policy_model(str(policy.checkpoint(0)), seed=policy.seed)[0].eval()
    if carry.get("state"):  # the warmup belongs to the round's first steps, not to every iteration's
        config = config.replace(warmup_steps=0, warmup_ratio=0.0)
    policy.model.train()
    metrics = train_grpo(policy.model, policy.tokenizer, rows, config, ref_model=carry.get("reference"),
                         out_dir=out_dir, optimizer_carry=carry, anchor_rows=anchor_rows)
    policy.model.eval()
    return metrics


def _round_train(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The round's train summary: steps summed, the other metrics step-weighted over iterations."""
    steps = sum(h.get("steps", 0) for h in history)
    out: dict[str, Any] = {"steps": steps, "groups": sum(h["groups"] for h in history),
                           "topup_tasks": sum(h.get("topup_tasks", 0) for h in history),
                           "topup_samples": sum(h.get("topup_samples", 0) for h in history)}
    for key in ("clip_fraction", "kl", "kl_to_sampler", "entropy", "grad_norm", "reward_mean"):
        weighted = [(h[key], h.get("steps", 0) if key != "reward_mean" else h["samples"]) for h in history
                    if h.get(key) is not None]
        total = sum(w for _, w in weighted)
        if total:
            out[key] = sum(v * w for v, w in weighted) / total
    if "train_loss" in (history[-1] if history else {}):
        out["final_loss"] = history[-1]["train_loss"]
    return out


def _save_iteration(policy: Any, round_: int, i: int, history: list[dict[str, Any]], carry: dict[str, Any]) -> None:
    """Weights, optimizer state and the metrics so far, written beside and renamed (a half-written iteration never
    counts)."""
    import torch
    from transformers.utils import logging as hf_logging

    from trainer.models import save_model

    hf_logging.disable_progress_bar()
    final = iteration_dir(policy, round_, i)
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    save_model(policy.model, policy.tokenizer, str(partial))
    if carry.get("state"):
        torch.save(carry["state"], partial / OPTIMIZER_FILE)
    (partial / METRICS_FILE).write_text(json.dumps(history, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    crash_point(f"round{round_}:iter{i}:saved")
    if i:  # resuming needs only the newest complete iteration
        shutil.rmtree(iteration_dir(policy, round_, i - 1), ignore_errors=True)


def _resume(policy: Any, round_: int, carry: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics of the iterations already done; loads the newest one's weights into the policy and its optimizer
    state into `carry`."""
    pattern = re.compile(rf"round-{round_}\.iter-(\d+)")
    root = policy.checkpoint(round_).parent
    done = sorted(int(m.group(1)) for p in (root.iterdir() if root.is_dir() else [])
                  if (m := pattern.fullmatch(p.name)) and (p / METRICS_FILE).is_file())
    if not done:
        return []
    newest = iteration_dir(policy, round_, done[-1])
    if not policy.has_checkpoint(round_):
        policy.model, policy.tokenizer = load_policy_model(str(newest), seed=policy.seed)
        if (newest / OPTIMIZER_FILE).is_file():
            import torch
            carry["state"] = torch.load(newest / OPTIMIZER_FILE, weights_only=True)
    return json.loads((newest / METRICS_FILE).read_text())
