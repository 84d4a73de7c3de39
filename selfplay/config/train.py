"""The trainer config of one training call of a loop: shared `[train] settings` < the algorithm's defaults <
`settings.<algorithm>` (a sub-table per trainer: settings.dpo = {...}).

What it is for: one rule for every caller (the algorithms of `selfplay.jobs.algorithms`, the served policy's LoRA
settings). What it does not do: know any algorithm's defaults (each algorithm passes its own).
"""

from __future__ import annotations

from typing import Any

from trainer.config import TrainConfig

TRAINERS = ("sft", "dpo", "grpo")  # the per-trainer sub-tables of `[train] settings`


def train_config(name: str, defaults: dict[str, Any], settings: dict[str, Any], *, max_steps: int | None = None,
                 epochs: int | None = None, seed: int = 0) -> TrainConfig:
    """The TrainConfig: shared settings < `defaults` < `settings.<name>`; `max_steps` / `epochs` win over all."""
    own = settings.get(name) or {}
    if not isinstance(own, dict):
        raise ValueError(f"[train] settings.{name}: expected a table of trainer keys, got {own!r}")
    shared = {k: v for k, v in settings.items() if k not in TRAINERS}
    values = {"progress": "off", "seed": seed, **shared, **defaults, **own}
    if max_steps is not None:
        values["max_steps"] = max_steps
    if epochs is not None:
        values["epochs"] = epochs
    return TrainConfig.from_dict(values, source="[train] settings")
