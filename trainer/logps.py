"""Per-token and per-sequence log-probabilities of completions, batched, for policies and references.

What it is for: DPO and GRPO both score "prompt + completion" sequences; reference (and GRPO's old-policy)
log-probs are computed once before the first update, so no second model copy is kept during training:
the reference is an explicit frozen model, the policy with LoRA adapters disabled, or the policy as it is at the
start of the call (full fine-tune). `accelerate` splits that pass between processes and gathers it back.
What it does not do: losses (see `trainer.losses`).
"""

from __future__ import annotations

import torch

from trainer.encode import pad_batch
from trainer.losses import token_logps
from trainer.lora import reference_context


def completion_token_logps(model, batch: dict) -> torch.Tensor:
    """(B, T-1) log-probs of each trained (completion) token, 0 elsewhere; gradients flow when enabled."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits
    return token_logps(logits, batch["labels"])


@torch.no_grad()
def frozen_token_logps(model, seqs: list, pad_id: int, batch_size: int, accelerator=None,
                       use_reference: bool = False) -> list[torch.Tensor]:
    """Per-sequence 1-D CPU tensors of completion-token log-probs (aligned to ids[1:]), computed without gradients.

    `use_reference`: run a peft model with its adapters disabled. With an accelerator, each process scores its
    share of `seqs` and all processes receive the full list.
    """
    device = accelerator.device if accelerator else next(model.parameters()).device
    indices = list(range(len(seqs)))
    was_training = model.training
    model.eval()
    context = reference_context(model) if use_reference else _null()
    results: dict[int, torch.Tensor] = {}
    share = accelerator.split_between_processes(indices) if accelerator else _null(indices)
    with context, share as mine:
        for start in range(0, len(mine), batch_size):
            chunk = mine[start:start + batch_size]
            batch = {k: v.to(device) for k, v in pad_batch([seqs[i] for i in chunk], pad_id).items()}
            per_token = completion_token_logps(model, batch).float().cpu()
            for row, i in enumerate(chunk):
                results[i] = per_token[row, : len(seqs[i]) - 1].clone()
    if accelerator and accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        merged: dict[int, torch.Tensor] = {}
        for part in gather_object([results]):
            merged.update(part)
        results = merged
    model.train(was_training)
    return [results[i] for i in indices]


class _null:
    def __init__(self, value=None):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return False


def stack_aligned(values: list[torch.Tensor], width: int) -> torch.Tensor:
    """Right-pad 1-D tensors with 0 to (len(values), width) — the layout of `token_logps` on a padded batch."""
    out = torch.zeros((len(values), width))
    for row, value in enumerate(values):
        out[row, : len(value)] = value
    return out
