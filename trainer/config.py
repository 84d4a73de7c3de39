"""The one typed, serializable training config shared by SFT, DPO and GRPO.

What it is for: every knob of a run in one dataclass that loads from JSON/TOML (`--config FILE`), takes CLI
overrides, rejects unknown keys by name, and is written as `config.json` into the output directory.
What it does not do: validate data or pick per-model defaults (one set of defaults; pass what your model needs).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from trainer.errors import ConfigError


@dataclass
class TrainConfig:
    # schedule
    epochs: int = 1                     # passes over the data (GRPO: PPO-style iterations over one round's samples)
    max_steps: int | None = None        # optimizer steps; overrides epochs when set
    max_epochs: float | None = None     # cap on passes over the data even with max_steps: steps scale with the data
    batch_size: int = 8                 # sequences (SFT, GRPO) or pairs (DPO) per micro-batch
    grad_accum: int = 1                 # micro-batches per optimizer step
    lr: float = 1e-4
    warmup_steps: int = 0               # linear warmup, then cosine decay to min_lr_ratio * lr
    warmup_ratio: float = 0.0           # used when warmup_steps == 0
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    max_grad_norm: float | None = 1.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    seed: int = 0
    # data
    max_length: int = 1024              # tokens per sequence; longer ones are truncated (counted in metrics)
    packing: bool = False               # SFT: pack examples into max_length rows (position_ids reset per example)
    group_by_length: bool = False       # batch similar lengths together: less padding, but batches that share a
                                        # length can share a label trait (e.g. 3-digit sums) and bias updates
    # precision / device (accelerate)
    mixed_precision: str = "no"         # "no" | "bf16" | "fp16"
    cpu: bool = False                   # force CPU even when a GPU is visible
    # LoRA (peft); used by the file-based entry points (in-process callers wrap with trainer.lora.apply_lora)
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: Any = "all-linear"
    # DPO
    beta: float = 0.1
    rpo_alpha: float = 0.0              # weight of the NLL on chosen (per token, RPO): holds chosen log-probs up
    # GRPO
    kl_coef: float = 0.0                # coefficient of the k3 KL to the reference (0: no reference pass at all)
    clip_eps: float = 0.2               # PPO ratio clip: [1 - clip_eps, 1 + clip_eps_high]
    clip_eps_high: float | None = None  # None: same as clip_eps
    normalize_std: bool = True          # GRPO advantages divided by the group std (False: Dr. GRPO style)
    drop_zero_advantage: bool = True    # skip groups whose rewards are all equal (no signal; saves compute)
    negative_advantage_scale: float = 1.0  # multiplies advantages < 0 (0: learn from the group's successes only)
    anchor_coef: float = 0.0            # GRPO: weight of a per-token NLL on `anchor_rows` (e.g. the seed SFT rows;
                                        # PPO-ptx style), mixed into the same batches
    # output
    save_steps: int = 0                 # checkpoint every N steps and at the end (0: none); the model is always saved
    save_total_limit: int = 2           # checkpoints kept (oldest removed)
    resume: bool = True                 # continue from the newest checkpoint in out_dir when there is one
    log_every: int = 10                 # optimizer steps between metrics lines / progress redraws
    progress: str = "auto"              # "auto" (live line on a terminal), "on", "off"
    extra: dict = field(default_factory=dict)  # free-form notes carried into config.json

    def __post_init__(self):
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision must be no, bf16 or fp16, not {self.mixed_precision!r}")
        if self.progress not in ("auto", "on", "off"):
            raise ConfigError(f"progress must be auto, on or off, not {self.progress!r}")
        for name in ("batch_size", "grad_accum", "epochs", "max_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_epochs is not None and self.max_epochs <= 0:
            raise ConfigError(f"max_epochs must be > 0 (or unset), got {self.max_epochs}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1 (or unset to use epochs), got {self.max_steps}")
        self.adam_betas = tuple(self.adam_betas)

    @classmethod
    def from_dict(cls, values: dict, source: str = "config") -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        return cls(**values)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, out_dir: str) -> None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "config.json"), "w") as fh:
            json.dump(self.to_dict(), fh, indent=2)


def load_config(path: str) -> TrainConfig:
    """Read a TrainConfig from a .json or .toml file (a `[train]` table in TOML is used when present)."""
    if path.endswith(".toml"):
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib

        with open(path, "rb") as fh:
            values = tomllib.load(fh)
        values = values.get("train", values)
    else:
        with open(path) as fh:
            values = json.load(fh)
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a table/object of config keys")
    return TrainConfig.from_dict(values, source=path)
