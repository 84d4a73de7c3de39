"""GRPO on groups sampled by the rest of the engine: `{"prompt", "completions": [K strings], "rewards": [K]}`.

What it is for: one round of group-relative policy optimisation on the newest policy's samples. Advantages are
group-normalised (`normalize_std=False`: the no-std variant), the loss is token-level normalised, a k3 KL to the
reference is added with `kl_coef`, and the PPO-style clipped ratio is taken against the log-probs of the policy as it
was when the round started (the policy that sampled): with several mini-batches or `epochs > 1` the policy moves
away from it and the clip bounds the update. Online-ness comes from rounds: sample with the new policy, call again.
What it does not do: sampling or reward computation (the caller's job; see the agents and verifiers packages).
"""

from __future__ import annotations

from functools import partial

import torch

from trainer.config import TrainConfig
from trainer.data import load_dataset_file, validate_groups
from trainer.encode import encode_prompt_completion, pad_batch
from trainer.logps import completion_token_logps, frozen_token_logps, stack_aligned
from trainer.loop import StepLoss, train_loop
from trainer.losses import grpo_token_losses, group_advantages, k3_kl
from trainer.lora import is_peft
from trainer.sft import _pad_id


def encode_groups(tokenizer, rows: list[dict], config: TrainConfig) -> tuple[list, dict]:
    """One sequence per completion with its group advantage in `extra["adv"]`; drops no-signal groups if asked.

    A row may carry what the sampler produced (see `selfplay.datasets.rl_row`): `completion_token_ids` (trained as
    sampled instead of re-encoding the text) and `completion_logprobs` (their log-probs under the sampling policy:
    then the "old" policy of the PPO ratio)."""
    seqs, kept_groups, rewards_all = [], 0, []
    for row in rows:
        rewards = torch.tensor([row["rewards"]], dtype=torch.float32)
        rewards_all.extend(row["rewards"])
        advantages = group_advantages(rewards, config.normalize_std)[0]
        advantages = torch.where(advantages < 0, advantages * config.negative_advantage_scale, advantages)
        drop_zero = config.drop_zero_advantage and not config.kl_coef  # without a KL term they have no gradient
        if drop_zero and bool((advantages == 0).all()):
            continue
        kept_groups += 1
        sampled_ids = row.get("completion_token_ids") or [None] * len(row["completions"])
        sampled_logps = row.get("completion_logprobs") or [None] * len(row["completions"])
        for completion, adv, ids, logps in zip(row["completions"], advantages.tolist(), sampled_ids, sampled_logps):
            if adv == 0 and drop_zero:
                continue  # kept, it would only shrink the share of each batch that has a gradient
            if ids:  # trainer.encode: the ids as sampled (when they decode to the text), their log-probs kept
                seq = encode_prompt_completion(tokenizer, row["prompt"], completion, config.max_length, ids, logps)
            else:
                seq = encode_prompt_completion(tokenizer, row["prompt"], completion, config.max_length)
            if seq.extra.get("logprobs") is not None:
                seq.extra["sampler_logps"] = _aligned_logprobs(seq)
            if sum(seq.mask):
                seq.extra["adv"] = adv
                seqs.append(seq)
    stats = {"groups": len(rows), "groups_trained": kept_groups, "reward_mean": sum(rewards_all) / len(rewards_all)}
    return seqs, stats


def _aligned_logprobs(seq) -> torch.Tensor:
    """The sampler's log-probs of the sampled ids laid out like `frozen_token_logps` (aligned to ids[1:], 0 elsewhere)."""
    aligned = torch.zeros(len(seq.ids) - 1)
    start = seq.extra["tail_start"]
    for i, value in enumerate(seq.extra["logprobs"]):
        if 0 <= start + i - 1 < len(aligned):
            aligned[start + i - 1] = float(value)
    return aligned


def grpo_collate(seqs, pad_id: int) -> dict:
    batch = pad_batch(seqs, pad_id)
    width = batch["input_ids"].shape[1] - 1
    batch["old_logps"] = stack_aligned([s.extra["old"] for s in seqs], width)
    if "ref" in seqs[0].extra:
        batch["ref_logps"] = stack_aligned([s.extra["ref"] for s in seqs], width)
    batch["advantages"] = torch.tensor([[s.extra["adv"]] for s in seqs])
    batch["anchor"] = torch.tensor([[bool(s.extra.get("anchor"))] for s in seqs])
    batch["units"] = int((batch["labels"][:, 1:] != -100).sum())
    batch["tokens"] = sum(len(s) for s in seqs)
    return batch


def make_grpo_step_loss(config: TrainConfig):
    def step_loss(model, batch) -> StepLoss:
        logps = completion_token_logps(model, batch)
        mask = (batch["labels"][:, 1:] != -100).to(logps.dtype)
        ref = batch.get("ref_logps")
        # anchor rows: ratio against the current log-probs (always 1, never clipped), so their gradient is
        # anchor_coef * grad log p: a per-token NLL term, mixed into the GRPO batch
        old = torch.where(batch["anchor"], logps.detach(), batch["old_logps"])
        per_token = grpo_token_losses(logps, old, batch["advantages"], ref, config.kl_coef,
                                      config.clip_eps, config.clip_eps_high)
        ratio = torch.exp(logps.detach() - old)
        high = config.clip_eps if config.clip_eps_high is None else config.clip_eps_high
        clipped = ((ratio < 1 - config.clip_eps) | (ratio > 1 + high)).float()
        metrics = {"clip_fraction": (clipped * mask).sum()}
        if ref is not None:
            metrics["kl"] = (k3_kl(logps.detach(), ref) * mask).sum()
        return StepLoss((per_token * mask).sum(), metrics)
    return step_loss


def train_grpo(model, tokenizer, rows: list[dict], config: TrainConfig | None = None, ref_model=None,
               out_dir: str | None = None, source: str = "<rows>", optimizer_carry: dict | None = None,
               anchor_rows: list[dict] | None = None) -> dict:
    """One GRPO round on `rows` (samples of the current policy), training `model` in place; returns metrics.

    The KL reference (only computed when config.kl_coef > 0) is `ref_model`, else the LoRA base (adapters off),
    else the policy at the start of this call. Pass the same `ref_model` every round to anchor to the original model.
    `optimizer_carry`: see `trainer.loop.train_loop` (one AdamW across the iterations of an online round).
    `anchor_rows` (SFT rows, with `config.anchor_coef` > 0): trained with a per-token NLL of weight anchor_coef in
    the same batches (the policy-gradient of a fixed answer at ratio 1), like PPO-ptx's pretraining mix.
    """
    from trainer.loop import make_accelerator

    config = config or TrainConfig()
    validate_groups(rows, source)
    seqs, stats = encode_groups(tokenizer, rows, config)
    n_samples = len(seqs)
    if seqs and anchor_rows and config.anchor_coef:
        from trainer.encode import encode_sft
        for seq in encode_sft(tokenizer, anchor_rows, config.max_length):
            if sum(seq.mask):
                seq.extra.update(adv=config.anchor_coef, anchor=True)
                seqs.append(seq)
    if not seqs:  # every group had equal rewards: nothing to learn this round, which is a result, not an error
        return {"steps": 0, **stats}
    accelerator = make_accelerator(config)
    pad_id = _pad_id(tokenizer)
    model.to(accelerator.device)
    start = frozen_token_logps(model, seqs, pad_id, config.batch_size, accelerator)
    for seq, logps in zip(seqs, start):  # the ratio's "old" policy: the sampler's log-probs when given
        seq.extra["old"] = seq.extra.get("sampler_logps", logps)
    if config.kl_coef:
        _attach_reference(model, ref_model, seqs, pad_id, config, accelerator)
    collate = partial(grpo_collate, pad_id=pad_id)
    metrics = train_loop(model, seqs, [len(s) for s in seqs], collate, make_grpo_step_loss(config), config, out_dir,
                         name="grpo", accelerator=accelerator, optimizer_carry=optimizer_carry)
    end = frozen_token_logps(model, seqs, pad_id, config.batch_size, accelerator)
    shift = policy_shift(seqs[:n_samples], start[:n_samples], end[:n_samples])  # on the samples, not the anchors
    return {**metrics, **stats, **shift, "sequences": n_samples, "anchor_sequences": len(seqs) - n_samples}


def policy_shift(seqs, start: list, end: list) -> dict:
    """How far the call moved the policy on its own samples, per completion token: `kl_to_sampler` (k3 estimate of
    KL(start || end), samples drawn from start), `entropy` (mean -log p of the sampled tokens under the policy at the
    start: at temperature 1, an estimate of its entropy), and `logp_delta` (mean change of those log-probs)."""
    kl = ent = delta = units = 0.0
    for seq, before, after in zip(seqs, start, end):
        mask = torch.tensor(seq.mask[1:len(before) + 1], dtype=torch.float32)
        log_ratio = after - before
        kl += float(((torch.exp(log_ratio) - log_ratio - 1) * mask).sum())
        ent += float((-before * mask).sum())
        delta += float((log_ratio * mask).sum())
        units += float(mask.sum())
    units = max(units, 1.0)
    return {"kl_to_sampler": kl / units, "entropy": ent / units, "logp_delta": delta / units}


def _attach_reference(model, ref_model, seqs, pad_id: int, config, accelerator) -> None:
    if ref_model is None and not is_peft(model):
        for seq in seqs:  # the policy at the start of the call is the reference: same numbers as "old"
            seq.extra["ref"] = seq.extra["old"]
        return
    scorer = ref_model.to(accelerator.device) if ref_model is not None else model
    logps = frozen_token_logps(scorer, seqs, pad_id, config.batch_size, accelerator, use_reference=ref_model is None)
    for seq, ref in zip(seqs, logps):
        seq.extra["ref"] = ref


def run_grpo(model_name: str, data_path: str, out_dir: str, config: TrainConfig | None = None,
             ref_model_name: str | None = None) -> dict:
    """File-based GRPO round: load the policy, train on the groups in `data_path`, save to `out_dir`."""
    from trainer.models import load_model
    from trainer.session import finish, start

    config = config or TrainConfig()
    rows = load_dataset_file(data_path, "grpo")
    model, tokenizer = start(model_name, config)
    ref_model = load_model(ref_model_name)[0].eval() if ref_model_name else None
    metrics = train_grpo(model, tokenizer, rows, config, ref_model, out_dir, source=data_path)
    return finish(model, tokenizer, out_dir, config, metrics)
