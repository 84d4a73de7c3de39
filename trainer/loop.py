"""The training loop shared by SFT, DPO and GRPO: accelerate, accumulation, schedule, checkpoints, logging.

What it is for: an algorithm supplies encoded examples, a collate function and a `step_loss(model, batch)` that
returns a *summed* loss and its unit count (tokens or pairs); this loop does the rest. Gradient accumulation divides
by the units of the whole accumulation window (not a mean of means). Device placement, mixed precision and
multi-GPU/multi-node go through `accelerate` (`accelerate launch ...`); checkpoints are `accelerator.save_state`
(safetensors weights + optimizer, scheduler, RNG and position), so a resumed run continues exactly.
What it does not do: any algorithm-specific math, or hand-written distributed code.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from typing import Callable

import torch

from trainer.errors import ConfigError
from trainer.lora import is_peft
from trainer.losses import warmup_cosine
from trainer.progress import Progress

CHECKPOINT_DIR = "checkpoints"


@dataclass
class StepLoss:
    """What `step_loss` returns for one micro-batch: summed loss, metric sums (divided by units when logged)."""

    loss_sum: torch.Tensor
    metric_sums: dict = field(default_factory=dict)


class EpochBatches:
    """Batches of example indices, reshuffled per epoch from (seed, epoch) only, so a resumed run sees the same order.

    With `group_by_length`, each shuffled chunk of 64 batches is sorted by length before cutting (less padding).
    The epoch is chosen with `use_epoch` (deliberately not `set_epoch`: accelerate's loaders call that with their
    own iteration counter, which restarts at 0 in a resumed process).
    """

    def __init__(self, lengths: list[int], batch_size: int, seed: int, group_by_length: bool = True):
        self.lengths, self.batch_size, self.seed, self.group = lengths, batch_size, seed, group_by_length
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        if self.group:
            chunk = self.batch_size * 64
            order = [i for s in range(0, len(order), chunk)
                     for i in sorted(order[s:s + chunk], key=self.lengths.__getitem__)]
        batches = [order[s:s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        shuffled = torch.randperm(len(batches), generator=generator).tolist()  # mix long and short batches again
        return iter([batches[i] for i in shuffled])


class RunPosition:
    """Where the run is (optimizer step, epoch, batches consumed in the epoch); saved in every checkpoint."""

    def __init__(self):
        self.step = self.epoch = self.batch = 0

    def state_dict(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]


def make_accelerator(config):
    from accelerate import Accelerator

    return Accelerator(mixed_precision=config.mixed_precision, cpu=config.cpu)


def latest_checkpoint(out_dir: str | None) -> str | None:
    root = os.path.join(out_dir, CHECKPOINT_DIR) if out_dir else None
    if not root or not os.path.isdir(root):
        return None
    steps = [int(m.group(1)) for d in os.listdir(root) if (m := re.fullmatch(r"step-(\d+)", d))]
    return os.path.join(root, f"step-{max(steps)}") if steps else None


def _prune_checkpoints(out_dir: str, keep: int) -> None:
    root = os.path.join(out_dir, CHECKPOINT_DIR)
    steps = sorted(int(m.group(1)) for d in os.listdir(root) if (m := re.fullmatch(r"step-(\d+)", d)))
    for step in steps[:-keep] if keep > 0 else []:
        shutil.rmtree(os.path.join(root, f"step-{step}"), ignore_errors=True)


@contextlib.contextmanager
def preserved_rng():
    """Training seeds the global RNGs (config.seed); the caller's own streams (e.g. for sampling) resume after."""
    import random

    import numpy as np

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


def train_loop(model, examples: list, lengths: list[int], collate: Callable, step_loss: Callable, config,
               out_dir: str | None = None, name: str = "train", accelerator=None,
               optimizer_carry: dict | None = None) -> dict:
    """Train `model` in place on `examples`; return summary metrics.

    `collate(list_of_examples) -> batch dict` must put the batch's unit count (a python int) under "units" and its
    token count under "tokens"; `step_loss(model, batch) -> StepLoss`. Global RNGs are seeded from config.seed
    inside and restored for the caller afterwards. `optimizer_carry` (in/out, a dict the caller keeps): the AdamW
    state under "state" is loaded before the first step and written back after the last, so calls on successive
    batches of samples (online RL iterations) continue one optimizer instead of restarting its moments each call.
    """
    with preserved_rng():
        return _train_loop(model, examples, lengths, collate, step_loss, config, out_dir, name, accelerator,
                           optimizer_carry)


def _train_loop(model, examples, lengths, collate, step_loss, config, out_dir, name, accelerator,
                optimizer_carry=None) -> dict:
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader

    if config.lora and not is_peft(model):
        raise ConfigError("config.lora is set but the model has no adapters: wrap it first with "
                         "trainer.lora.apply_lora(model, config) (the file-based run_* entry points do this)")
    accelerator = accelerator or make_accelerator(config)
    set_seed(config.seed)
    sampler = EpochBatches(lengths, config.batch_size, config.seed, config.group_by_length)
    loader = DataLoader(examples, batch_sampler=sampler, collate_fn=collate)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, betas=config.adam_betas, weight_decay=config.weight_decay)
    if optimizer_carry and optimizer_carry.get("state"):
        optimizer.load_state_dict(optimizer_carry["state"])
        for group in optimizer.param_groups:  # this call's lr and schedule, the carried moments
            group["lr"] = group["initial_lr"] = config.lr
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    batches_per_epoch = len(loader)
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accum)
    total = config.max_steps or steps_per_epoch * config.epochs
    if config.max_epochs:  # a round with little data trains little (a collapsed round's 1 pair: not 100 steps)
        total = min(total, max(1, math.ceil(config.max_epochs * steps_per_epoch)))
    warmup = config.warmup_steps or int(config.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step, total, warmup, config.min_lr_ratio))
    position = RunPosition()
    accelerator.register_for_checkpointing(scheduler, position)

    resumed_from = latest_checkpoint(out_dir) if config.resume else None
    if resumed_from:
        accelerator.load_state(resumed_from)
    if out_dir and accelerator.is_main_process:
        config.save(out_dir)
    progress = Progress(name, total, config.progress, os.path.join(out_dir, "metrics.jsonl") if out_dir else None,
                        enabled=accelerator.is_main_process, start_step=position.step)
    window_sums, run_sums = _Sums(), _Sums()
    last_record: dict = {}
    model.train()
    while position.step < total:
        sampler.use_epoch(position.epoch)
        batches = accelerator.skip_first_batches(loader, position.batch) if position.batch else loader
        window = []
        for batch in batches:
            window.append(batch)
            position.batch += 1
            if len(window) < config.grad_accum and position.batch < batches_per_epoch:
                continue
            _optimizer_step(accelerator, model, optimizer, scheduler, window, step_loss, config, window_sums)
            progress.add_tokens(sum(b["tokens"] for b in window))
            window = []
            position.step += 1
            if position.step % config.log_every == 0 or position.step == total:
                run_sums.merge(window_sums)
                last_record = progress.log(position.step, {**window_sums.means(), "lr": scheduler.get_last_lr()[0],
                                                           "epoch": position.epoch})
                window_sums = _Sums()
            if out_dir and config.save_steps and (position.step % config.save_steps == 0 or position.step == total):
                _save_checkpoint(accelerator, out_dir, position.step, config.save_total_limit)
            if position.step >= total:
                break
        if position.batch >= batches_per_epoch:
            position.epoch, position.batch = position.epoch + 1, 0
    progress.close()
    # drop accelerate's mixed-precision forward wrapper, so repeated rounds do not stack wrappers on the caller's model
    accelerator.unwrap_model(model, keep_fp32_wrapper=False).eval()
    if optimizer_carry is not None:
        optimizer_carry["state"] = optimizer.state_dict()
    run_sums.merge(window_sums)
    last = {k: v for k, v in last_record.items() if k not in ("step", "total_steps", "eta_s", "loss")}
    summary = {**last, "steps": position.step, "final_loss": last_record.get("loss"),
               "train_loss": run_sums.means().get("loss"), "tokens": progress.tokens, "resumed_from": resumed_from}
    accelerator.wait_for_everyone()
    return summary


def _optimizer_step(accelerator, model, optimizer, scheduler, window, step_loss, config, sums) -> None:
    units = sum(b["units"] for b in window)
    for i, batch in enumerate(window):
        sync = accelerator.no_sync(model) if i < len(window) - 1 else contextlib.nullcontext()
        with sync:
            out = step_loss(model, batch)
            accelerator.backward(out.loss_sum / max(units, 1))
        sums.add({"loss": out.loss_sum.detach(), **out.metric_sums}, batch["units"])
    if config.max_grad_norm:
        sums.add({"grad_norm": accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)}, 0, count=True)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _save_checkpoint(accelerator, out_dir: str, step: int, keep: int) -> None:
    accelerator.save_state(os.path.join(out_dir, CHECKPOINT_DIR, f"step-{step}"), safe_serialization=True)
    if accelerator.is_main_process:
        _prune_checkpoints(out_dir, keep)


class _Sums:
    """Running metric sums kept as tensors (no device sync per step); `means()` syncs once when logging."""

    def __init__(self):
        self.values: dict = {}
        self.units = 0
        self.counts: dict = {}

    def add(self, metrics: dict, units: int, count: bool = False) -> None:
        for key, value in metrics.items():
            value = value.detach().float() if torch.is_tensor(value) else float(value)
            self.values[key] = self.values.get(key, 0.0) + value
            if count:
                self.counts[key] = self.counts.get(key, 0) + 1
        self.units += units

    def merge(self, other: "_Sums") -> None:
        for key, value in other.values.items():
            self.values[key] = self.values.get(key, 0.0) + value
        for key, value in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + value
        self.units += other.units

    def means(self) -> dict:
        out = {}
        for key, value in self.values.items():
            denom = self.counts.get(key) or max(self.units, 1)
            out[key] = float(value) / denom
        return out
