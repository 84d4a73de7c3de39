"""The config of `selfplay prm-label`: its sections, its pinned keys and its loader.

What it is for: `load_prm_label_config(path, overrides)` -> a validated `PrmLabelConfig` whose task and
candidate files (and a local model's directory) are found next to the config. `PINNED` is what a resumed
prm-label run must keep (`selfplay.config.resume.check_resume`): the candidates and how their steps are rolled
out and labelled; the budget, `dedup`, concurrency and threads may change between sessions.
What it does not do: label anything (`selfplay.jobs.prm_label`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from selfplay.config.common import BudgetSection, ModelSection, Section, apply_overrides, beside, read_toml, validate

__all__ = ["PINNED", "PrmLabelConfig", "PrmLabelSection", "load_prm_label_config"]

PINNED = {"model": ("name", "backend", "base_url"),
          "prm_label": ("tasks", "candidates", "k", "rollouts", "separator", "max_tokens", "temperature", "top_p",
                        "seed", "system_prompt")}


class PrmLabelSection(Section):
    tasks: str                                   # the tasks (with reference answers) the candidates answer
    candidates: str | None = None                # a `selfplay generate` candidates.jsonl; else sample k per task
    k: int = Field(default=4, ge=1)              # candidates per task when sampling here
    rollouts: int = Field(default=8, ge=1)       # N completions per step prefix
    separator: str | None = None                 # step separator (None: `split_steps`' default rule)
    soft: bool = False                           # soft labels (fraction verified) instead of hard (any verified)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int = 0
    system_prompt: str | None = None
    dedup: bool = True                           # label identical candidate texts of one task once
    concurrency: int = Field(default=16, ge=1)   # candidates labelled at once
    threads: int | None = Field(default=None, ge=1)  # local: torch CPU threads (else $SELFPLAY_TORCH_THREADS,
                                                     # else 1 on <= 2 CPUs: selfplay.pipeline.llm.torch_threads)


class PrmLabelConfig(Section):
    model: ModelSection
    prm_label: PrmLabelSection
    budget: BudgetSection = Field(default_factory=BudgetSection)
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)


def load_prm_label_config(path: str | Path, overrides: list[str] | None = None) -> PrmLabelConfig:
    data = apply_overrides(read_toml(path), overrides or [])
    config = validate(PrmLabelConfig, data, str(path))
    section = config.prm_label
    for key in ("tasks", "candidates"):  # files are found next to the config
        value = getattr(section, key)
        if value:
            setattr(section, key, beside(path, value))
    if config.model.path:
        config.model.path = beside(path, config.model.path)
    return config
