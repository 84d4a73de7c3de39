"""The config of `selfplay run` (the self-improvement loop) and of the demo's two arms.

What it is for: one typed, serialisable description of a loop: the policy and its backend, the
task sources (train pool, held-out eval set, optional cold-start SFT rows), how candidates are
made and checked, how they are selected, how the policy is trained, how it is evaluated, how many
rounds, and the budget. Unknown keys are errors that name the key.
What it does not do: run anything (see `selfplay.jobs.loop`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from selfplay.config import (BudgetSection, ModelSection, SamplingSection, Section, apply_overrides, read_toml,
                             validate)


class LocalSection(Section):
    hourly_usd: float = Field(default=0.0, ge=0)   # hardware price of the machine running the local backend
    max_batch_rows: int = Field(default=256, ge=1)
    threads: int | None = Field(default=None, ge=1)


class TasksSection(Section):
    train: str | None = None          # JSONL task file of the training pool
    eval: str | None = None           # JSONL task file of the held-out set
    seed_sft: str | None = None       # JSONL of {"messages": [...]} for the cold-start SFT (round 0)
    builtin: Literal["addition"] | None = None   # a built-in family instead of files
    digits: int = Field(default=2, ge=1, le=6)
    style: Literal["short", "worked"] = "worked"   # builtin addition: "47+38" -> "85", or a worked solution
    n_seed: int = Field(default=200, ge=0)
    n_train: int = Field(default=1000, ge=1)
    n_eval: int = Field(default=200, ge=1)
    per_round: int | None = Field(default=None, ge=1)   # train tasks sampled per round (default: all)

    @model_validator(mode="after")
    def _one_source(self) -> "TasksSection":
        if self.builtin is None and (self.train is None or self.eval is None):
            raise ValueError("set [tasks] train and eval (JSONL files), or builtin = \"addition\"")
        return self


class LoopGenerate(SamplingSection):
    max_tokens: int = Field(default=256, ge=1)
    verifier: Literal["math", "code"] = "math"
    verify_concurrency: int = Field(default=2, ge=1)


class SelectSection(Section):
    rule: Literal["rejection", "best_of_k", "majority"] = "rejection"
    cap_per_task: int | None = Field(default=4, ge=1)
    majority_threshold: float = Field(default=0.5, gt=0, le=1)
    decontaminate_n: int | None = Field(default=13, ge=1)   # drop candidates sharing an n-gram with eval tasks
    max_pairs: int = Field(default=4, ge=1)                 # DPO pairs per task


class TrainSection(Section):
    algorithm: Literal["sft", "dpo", "grpo"] = "sft"
    replay_seed: bool = True          # SFT: keep the cold-start rows in every round's data
    cold_start_epochs: int = Field(default=3, ge=0)
    cold_start_steps: int | None = Field(default=None, ge=1)   # overrides cold_start_epochs when set
    settings: dict[str, Any] = Field(default_factory=dict)   # trainer.config.TrainConfig fields


class EvalSection(Section):
    k: int = Field(default=8, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)


class LoopSection(Section):
    rounds: int = Field(default=4, ge=0)
    arm: Literal["self_improve", "control"] = "self_improve"   # control: same steps on the seed set alone
    control_steps: list[int] | None = None                       # control: optimizer steps per round


class RunConfig(Section):
    model: ModelSection
    local: LocalSection = Field(default_factory=LocalSection)
    tasks: TasksSection
    generate: LoopGenerate = Field(default_factory=LoopGenerate)
    select: SelectSection = Field(default_factory=SelectSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    loop: LoopSection = Field(default_factory=LoopSection)
    budget: BudgetSection = Field(default_factory=BudgetSection)
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)


def load_run_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    data = apply_overrides(read_toml(path), overrides or [])
    config = validate(RunConfig, data, str(path))
    base = Path(path).parent
    for key in ("train", "eval", "seed_sft"):
        value = getattr(config.tasks, key)
        if value and not Path(value).is_absolute():
            setattr(config.tasks, key, str((base / value).resolve()))
    return config
