"""Direct Preference Optimization on `{"prompt", "chosen", "rejected"}` rows (TRL conversational or plain text).

What it is for: `train_dpo(model, tokenizer, rows, config, ref_model=None)` trains in place with the sigmoid DPO
loss of `trainer.losses.dpo_loss`; chosen and rejected go through the model in one concatenated forward. Reference
log-probs come from `ref_model` (frozen) when given, else from the policy with LoRA adapters disabled, else from the
policy before its first update; all are computed once up front, so no second copy stays in memory while training.
With `rpo_alpha` > 0 (RPO) the per-token NLL of the chosen completions is added, which keeps their log-probs
rising (without it, the loop's rounds raise the margin while the chosen answers lose ~3 nats per round:
docs/trainer.md, "DPO in the loop"). Metrics: implicit chosen/rejected rewards, margin, accuracy,
`chosen_logp_delta`, `nll/chosen`. `run_dpo` is the file-based entry point.
What it does not do: IPO/hinge variants, or sampling new pairs (that is the rest of the engine).
"""

from __future__ import annotations

from functools import partial

import torch

from trainer.config import TrainConfig
from trainer.data import load_dataset_file, validate_preference
from trainer.errors import DataError
from trainer.encode import Encoded, encode_pair, pad_batch
from trainer.logps import completion_token_logps, frozen_token_logps
from trainer.loop import StepLoss, train_loop
from trainer.losses import dpo_loss, dpo_rewards
from trainer.lora import is_peft
from trainer.sft import _pad_id


def encode_pairs(tokenizer, rows: list[dict], max_length: int) -> list[tuple[Encoded, Encoded]]:
    """Each pair's chosen and rejected sequences, on their sampled token ids when the row carries them."""
    return [encode_pair(tokenizer, row, max_length) for row in rows]


def preference_logps(model, tokenizer, rows: list[dict], max_length: int = 1024, batch_size: int = 16,
                     use_reference: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed log-probs of chosen and rejected completions under `model` (for evaluation, e.g. held-out margins)."""
    pairs = encode_pairs(tokenizer, validate_preference(rows), max_length)
    seqs = [s for pair in pairs for s in pair]
    logps = frozen_token_logps(model, seqs, _pad_id(tokenizer), batch_size, use_reference=use_reference)
    sums = torch.stack([v.sum() for v in logps])
    return sums[0::2], sums[1::2]


def dpo_collate(pairs, pad_id: int) -> dict:
    """Chosen rows first, then rejected rows, in one padded batch; reference sums travel alongside."""
    seqs = [p[0] for p in pairs] + [p[1] for p in pairs]
    batch = pad_batch(seqs, pad_id)
    batch["ref_logps"] = torch.tensor([p[0].extra["ref"] for p in pairs] + [p[1].extra["ref"] for p in pairs])
    batch["units"] = len(pairs)
    batch["tokens"] = sum(len(s) for s in seqs)
    return batch


def make_dpo_step_loss(beta: float, rpo_alpha: float = 0.0):
    def step_loss(model, batch) -> StepLoss:
        n = batch["units"]
        sums = completion_token_logps(model, batch).sum(dim=1)
        ref = batch["ref_logps"].to(sums.dtype)
        args = (sums[:n], sums[n:], ref[:n], ref[n:])
        metrics = {k: v.sum() for k, v in dpo_rewards(*args, beta=beta).items()}
        loss = dpo_loss(*args, beta=beta) * n
        if rpo_alpha:  # RPO: per-token NLL of the chosen completions, against likelihood displacement
            chosen_tokens = (batch["labels"][:n, 1:] != -100).sum(dim=1).clamp(min=1).to(sums.dtype)
            nll = (-sums[:n] / chosen_tokens).sum()
            loss = loss + rpo_alpha * nll
            metrics["nll/chosen"] = nll.detach()
        return StepLoss(loss, metrics)
    return step_loss


def train_dpo(model, tokenizer, rows: list[dict], config: TrainConfig | None = None, ref_model=None,
              out_dir: str | None = None, source: str = "<rows>") -> dict:
    """DPO `model` in place on preference rows; returns metrics (loss, rewards/chosen|rejected|margin|accuracy)."""
    from trainer.loop import make_accelerator

    config = config or TrainConfig()
    validate_preference(rows, source)
    pairs = [p for p in encode_pairs(tokenizer, rows, config.max_length) if sum(p[0].mask) and sum(p[1].mask)]
    if not pairs:
        raise DataError(f"{source}: no pair has completion tokens within max_length={config.max_length}")
    accelerator = make_accelerator(config)
    _attach_reference(model, ref_model, pairs, _pad_id(tokenizer), config, accelerator)
    collate = partial(dpo_collate, pad_id=_pad_id(tokenizer))
    lengths = [len(c) + len(r) for c, r in pairs]
    step_loss = make_dpo_step_loss(config.beta, config.rpo_alpha)
    metrics = train_loop(model, pairs, lengths, collate, step_loss, config, out_dir, name="dpo", accelerator=accelerator)
    delta = metrics.get("rewards/chosen")  # beta * (log pi - log ref) on chosen, last logging window
    extra = {"chosen_logp_delta": delta / config.beta} if delta is not None and config.beta else {}
    return {**metrics, **extra, "pairs": len(pairs)}


def _attach_reference(model, ref_model, pairs, pad_id: int, config, accelerator) -> None:
    """Store each sequence's summed reference log-prob in `extra["ref"]`."""
    seqs = [s for pair in pairs for s in pair]
    scorer = ref_model if ref_model is not None else model
    if ref_model is not None:
        ref_model.to(accelerator.device)
    else:
        model.to(accelerator.device)
    logps = frozen_token_logps(scorer, seqs, pad_id, config.batch_size * 2, accelerator,
                               use_reference=ref_model is None and is_peft(model))
    for seq, value in zip(seqs, logps):
        seq.extra["ref"] = float(value.sum())


def run_dpo(model_name: str, data_path: str, out_dir: str, config: TrainConfig | None = None,
            ref_model_name: str | None = None) -> dict:
    """File-based DPO; the reference is `ref_model_name` when given, else the starting model itself."""
    from trainer.models import load_model
    from trainer.session import finish, start

    config = config or TrainConfig()
    rows = load_dataset_file(data_path, "dpo")
    model, tokenizer = start(model_name, config)
    ref_model = load_model(ref_model_name)[0].eval() if ref_model_name else None
    metrics = train_dpo(model, tokenizer, rows, config, ref_model, out_dir, source=data_path)
    return finish(model, tokenizer, out_dir, config, metrics)
