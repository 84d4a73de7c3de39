"""The phases of one round of the loop: sample (chunked, durable per chunk), score, select, train, evaluate.

What it is for: small functions the loop strings together. Sampling runs a chunk of tasks at once
and stores the chunk's candidates in ONE transaction, so after a kill a chunk is either all there
or run again whole: with the local backend this keeps every batch the same shape as in an
uninterrupted run, so results are identical, not just close; with an API backend the request cache
makes the re-run free. Selection turns verdicts into TRL rows; training calls `trainer`.
What it does not do: decide the order of phases or when to stop (see `selfplay.jobs.loop`).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Callable

from agents.llm.types import SamplingParams
from selfplay.pipeline.datasets import preference_row, rl_row, sft_row
from selfplay.pipeline.metrics import maj_at_k, mean_pass_at_k
from selfplay.core.crashpoints import crash_point
from selfplay.pipeline.select import Scored, best_of_k, contaminated, majority_label, preference_pairs, rejection_sample, rl_group
from selfplay.core.store import RunStore
from selfplay.tasks.task import Task

EVAL = "eval"


def chunks(items: list[Task], size: int) -> list[list[Task]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


async def sample_chunked(llm: Any, store: RunStore, round_: int, tasks: list[Task], *, label: str, workflow: str,
                         k: int, params_for: Callable[[Task], SamplingParams], system_prompt: str | None = None,
                         options: dict[str, Any] | None = None, chunk_size: int = 32,
                         on_chunk: Callable[[int], None] | None = None,
                         check_for: Callable[[Task], Any] | None = None, adaptive: Any = None,
                         verifier: str | None = None, executor: Any = None, verify_concurrency: int = 2,
                         check: Any = None, **workflow_kwargs: Any) -> bool:
    """K candidates per task under `label`, through the one sampler (`selfplay.pipeline.sample.TaskSampler`).

    Tasks go `chunk_size` at a time as one group of lock-step waves (each wave stored in one write; see the
    sampler). `adaptive` (an object with `k_max` / `stop_after_verified` / `batch` / `low_pass_rate`, e.g. the
    loop's `[generate]`) with `verifier` turns on adaptive K: each wave is verified on `executor` as it lands
    (`check`: a model check such as the PRM's, for a verifier that is not rule-based).
    `workflow_kwargs`: `tool` (default for `tool_use`: the code sandbox on `executor`), `critic_llm`. Returns False when the budget refused a request.
    """
    from selfplay.pipeline.sample import TaskSampler, is_adaptive, sandbox_tool

    if workflow == "tool_use" and "tool" not in workflow_kwargs:  # the code sandbox, on the job's executor
        workflow_kwargs["tool"] = sandbox_tool(executor)
    adaptive_on = adaptive is not None and is_adaptive(adaptive)
    spec = SimpleNamespace(workflow=workflow, k=k, system_prompt=system_prompt, workflow_options=options or {},
                           verifier=verifier, verify_concurrency=verify_concurrency,
                           **({key: getattr(adaptive, key) for key in ADAPTIVE_KEYS} if adaptive_on else {}))
    sampler = TaskSampler(spec, llm, store, round_, executor=executor, label=label, params_for=params_for,
                          check_for=check_for or (lambda task: None), verify=adaptive_on and verifier is not None,
                          replay=True, check=check, **workflow_kwargs)
    for chunk in chunks(tasks, chunk_size):
        outcomes = await sampler.run_group(chunk, on_wave=lambda: crash_point(f"round{round_}:{label}:chunk"))
        if any(out.budget_refused for out in outcomes):
            return False
        if on_chunk:
            on_chunk(len(chunk))
    return True


ADAPTIVE_KEYS = ("k_max", "stop_after_verified", "batch", "low_pass_rate")


def scored(records: list[dict[str, Any]], verdicts: dict[tuple[str, str, int], dict[str, Any]]) -> list[Scored]:
    out = []
    for r in records:
        if r.get("error") is not None:
            continue
        v = verdicts.get((r["task_id"], r["workflow"], r["sample_index"]))
        if v is None:
            continue
        split = r.get("prompt_messages", 1)
        extracted = (v.get("details") or {}).get("extracted")
        out.append(Scored(task_id=r["task_id"], sample_index=r["sample_index"], prompt=tuple(r["messages"][:split]),
                          completion=tuple(r["messages"][split:]), text=r.get("final_answer", ""),
                          passed=bool(v["passed"]) and not v.get("error"), score=float(v["score"]),
                          answer=",".join(map(str, extracted)) if extracted else None, error=v.get("error"),
                          steps=tuple(r.get("steps") or ()), **_sampled(r)))
    return out


def _sampled(record: dict[str, Any]) -> dict[str, Any]:
    """The candidate's sampled token ids / log-probs (of its last message), for training on what was sampled."""
    ids, logprobs = record.get("completion_token_ids"), record.get("completion_logprobs")
    return {"token_ids": tuple(ids) if ids else None,
            "logprobs": tuple(logprobs) if ids and logprobs and len(logprobs) == len(ids) else None}


def by_task(items: list[Scored]) -> dict[str, list[Scored]]:
    groups: dict[str, list[Scored]] = {}
    for item in items:
        groups.setdefault(item.task_id, []).append(item)
    return groups


def eval_metrics(items: list[Scored], tasks: list[Task], k: int) -> dict[str, Any]:
    groups = by_task(items)
    counts = [(k, sum(1 for c in groups.get(t.id, []) if c.passed)) for t in tasks]
    majority = [maj_at_k([c.answer for c in groups.get(t.id, [])], [c.passed for c in groups.get(t.id, [])])
                for t in tasks]
    return {"eval_pass@1": mean_pass_at_k(counts, 1), "eval_pass@k": mean_pass_at_k(counts, k),
            "eval_maj@k": sum(majority) / len(tasks) if tasks else 0.0, "eval_k": k, "eval_tasks": len(tasks),
            "eval_verifier_errors": sum(1 for c in items if c.error)}


def training_rows(items: list[Scored], select: Any, algorithm: str, eval_prompts: list[str]) -> tuple[list[dict], dict]:
    """TRL rows for the round's algorithm from the verified candidates, after decontamination."""
    if select.decontaminate_n:
        flags = contaminated([c.text for c in items], eval_prompts, select.decontaminate_n)
        dropped = sum(flags)
        items = [c for c, bad in zip(items, flags) if not bad]
    else:
        dropped = 0
    groups = by_task(items)
    if algorithm == "dpo":
        rows = [preference_row(c, r) for g in groups.values() for c, r in preference_pairs(g, select.max_pairs)]
    elif algorithm == "grpo":
        rows = [rl_row(*found) for g in groups.values() if (found := rl_group(g))]
    else:
        rows = [sft_row(c) for g in groups.values() for c in _sft_choice(g, select)]
    return rows, {"decontaminated": dropped, "rows": len(rows)}


def _sft_choice(group: list[Scored], select: Any) -> list[Scored]:
    if select.rule == "best_of_k":
        best = best_of_k(group)
        return [best] if best is not None and best.passed else []
    if select.rule == "majority":  # pseudo-labels: agree with the maj@K answer (no reference needed)
        label = majority_label(group, select.majority_threshold)
        agreeing = [c for c in group if label is not None and c.answer == label and c.judged]
        return rejection_sample([_as_passed(c) for c in agreeing], select.cap_per_task)
    return rejection_sample(group, select.cap_per_task)


def _as_passed(candidate: Scored) -> Scored:
    from dataclasses import replace
    return replace(candidate, passed=True, score=1.0)


# Per-algorithm defaults: DPO at SFT's (shared) lr with an RPO NLL term on chosen (likelihood displacement), GRPO
# one pass over each round's samples (near on-policy, low clip fraction); both cap steps at a few passes over the
# round's rows, so a collapsed round trains little. They replace the shared `[train] settings` (which the SFT cold
# start also uses); a user sets DPO/GRPO keys in `settings.dpo` / `settings.grpo`, which win over both.
ALGORITHMS = ("sft", "dpo", "grpo")
ALGORITHM_DEFAULTS: dict[str, dict[str, Any]] = {
    "dpo": {"rpo_alpha": 1.0, "max_epochs": 10.0},  # the shared lr, beta 0.1; docs/trainer.md "DPO" has the numbers
    # GRPO: rounds of on-policy iterations (selfplay.jobs.online_rl, one AdamW per round), Dr.GRPO advantages, the
    # seed rows as an NLL anchor (without it SFT's lr collapses the policy onto its own outputs); docs/trainer.md "GRPO"
    "grpo": {"lr": 1e-3, "normalize_std": False, "max_epochs": 4.0, "warmup_steps": 10, "min_lr_ratio": 1.0,
             "anchor_coef": 1.0, "clip_eps": 0.2},
}


def train_config(algorithm: str, settings: dict[str, Any], *, max_steps: int | None = None,
                 epochs: int | None = None, seed: int = 0) -> Any:
    """The TrainConfig of one training call: shared settings < algorithm defaults < `settings.<algorithm>`."""
    from trainer.config import TrainConfig

    own = settings.get(algorithm) or {}
    if not isinstance(own, dict):
        raise ValueError(f"[train] settings.{algorithm}: expected a table of trainer keys, got {own!r}")
    shared = {k: v for k, v in settings.items() if k not in ALGORITHMS}
    values = {"progress": "off", "seed": seed, **shared, **ALGORITHM_DEFAULTS.get(algorithm, {}), **own}
    if max_steps is not None:
        values["max_steps"] = max_steps
    if epochs is not None:
        values["epochs"] = epochs
    return TrainConfig.from_dict(values, source="[train] settings")


def train_policy(policy: Any, rows: list[dict], algorithm: str, settings: dict[str, Any], out_dir: str,
                 *, max_steps: int | None = None, epochs: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Train the in-memory policy on `rows` with the trainer; returns the trainer's metrics."""
    config = train_config(algorithm, settings, max_steps=max_steps, epochs=epochs, seed=seed)
    policy.model.train()
    if algorithm == "dpo":
        from trainer.dpo import train_dpo
        metrics = train_dpo(policy.model, policy.tokenizer, rows, config, out_dir=out_dir)
    elif algorithm == "grpo":
        from trainer.grpo import train_grpo
        metrics = train_grpo(policy.model, policy.tokenizer, rows, config, out_dir=out_dir)
    else:
        from trainer.sft import train_sft
        metrics = train_sft(policy.model, policy.tokenizer, rows, config, out_dir=out_dir)
    policy.model.eval()
    return metrics
