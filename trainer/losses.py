"""Losses, advantages and schedules as small pure functions (tested against values computed by hand).

What it is for: the math of SFT, DPO and GRPO, separate from models, data and loops, so each rule can be read and
checked on its own. Inputs are tensors; nothing here touches a model or an optimizer.
What it does not do: batching, reference models or logging (see `trainer.sft`, `trainer.dpo`, `trainer.grpo`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE = -100


def _next_token_targets(labels: torch.Tensor) -> torch.Tensor:
    """labels shifted left by one and padded with IGNORE: target t is predicted from position t.
    (Shifting the labels instead of slicing the logits avoids copying the (B, T, V) logits.)"""
    return F.pad(labels[:, 1:], (0, 1), value=IGNORE)


def token_logps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p(labels[:, t+1] | <= t) for each position, aligned to labels[:, 1:]; 0 where the label is IGNORE.

    Shapes: logits (B, T, V), labels (B, T) -> (B, T-1). Uses cross_entropy (no full log_softmax copy kept).
    """
    targets = _next_token_targets(labels)
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1).clamp(min=0),
                          reduction="none").view_as(targets)
    return (-nll * (targets != IGNORE))[:, :-1]


def sft_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross-entropy over trained tokens (the caller divides by the window's token count)."""
    targets = _next_token_targets(labels).reshape(-1)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets, ignore_index=IGNORE,
                           reduction="sum")


def dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta: float = 0.1):
    """Mean DPO (sigmoid) loss: -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))). Inputs: summed log-probs."""
    logits = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * logits).mean()


def dpo_rewards(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta: float = 0.1):
    """Implicit rewards beta * (pi - ref) for chosen and rejected, their margin, and accuracy (margin > 0)."""
    chosen = beta * (policy_chosen_logps - ref_chosen_logps).detach()
    rejected = beta * (policy_rejected_logps - ref_rejected_logps).detach()
    return {"rewards/chosen": chosen, "rewards/rejected": rejected,
            "rewards/margin": chosen - rejected, "rewards/accuracy": (chosen > rejected).float()}


def group_advantages(rewards: torch.Tensor, normalize_std: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO advantages for rewards of shape (groups, K): r - mean(group), / (std(group) + eps) when normalize_std.

    std is the unbiased (Bessel) sample std, as in TRL's GRPOTrainer; a group of one, or of equal rewards, gets 0.
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    centered = rewards - rewards.mean(dim=1, keepdim=True)
    if not normalize_std:
        return centered
    if rewards.shape[1] < 2:
        return torch.zeros_like(rewards)
    return centered / (rewards.std(dim=1, keepdim=True) + eps)


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(pi || ref): exp(ref - pi) - (ref - pi) - 1 (>= 0, unbiased)."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def clipped_token_loss(logps, old_logps, advantages, clip_eps: float = 0.2, clip_eps_high: float | None = None):
    """PPO-style per-token loss -min(ratio * A, clip(ratio, 1-eps, 1+eps_high) * A), ratio = exp(logp - old_logp).

    `advantages` broadcasts over tokens (shape (B, 1) for one advantage per sequence).
    When old_logps are the current logps detached, ratio == 1 and the gradient is the plain policy gradient.
    """
    high = clip_eps if clip_eps_high is None else clip_eps_high
    ratio = torch.exp(logps - old_logps)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + high) * advantages
    return -torch.min(unclipped, clipped)


def grpo_token_losses(logps, old_logps, advantages, ref_logps=None, kl_coef: float = 0.0,
                      clip_eps: float = 0.2, clip_eps_high: float | None = None) -> torch.Tensor:
    """Per-token GRPO loss: clipped surrogate + kl_coef * k3 KL to the reference (when given)."""
    loss = clipped_token_loss(logps, old_logps, advantages, clip_eps, clip_eps_high)
    if kl_coef and ref_logps is not None:
        loss = loss + kl_coef * k3_kl(logps, ref_logps)
    return loss


def grpo_loss(logps, old_logps, advantages, mask, ref_logps=None, kl_coef: float = 0.0,
              clip_eps: float = 0.2, clip_eps_high: float | None = None) -> torch.Tensor:
    """Token-level normalised GRPO loss: sum of per-token losses over all completion tokens / their count
    (long and short completions weigh per token, as in DAPO / TRL's loss_type="dapo")."""
    per_token = grpo_token_losses(logps, old_logps, advantages, ref_logps, kl_coef, clip_eps, clip_eps_high)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1)


def warmup_cosine(step: int, total_steps: int, warmup_steps: int = 0, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear 1/w, 2/w, ... 1 over `warmup_steps`, then cosine from 1 down to `min_ratio` at total."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
