"""Supervised fine-tuning on chat data: loss on assistant tokens only, dynamic padding or packing.

What it is for: `train_sft(model, tokenizer, rows, config)` trains an already-loaded model in place (the demo keeps
one model in memory across rounds); `run_sft(model_name, data_path, out_dir, config)` is the file-based entry point
behind `selfplay train sft` (load, optional LoRA, train, save a plain checkpoint).
What it does not do: sampling or evaluation; completion-only (non-chat) SFT is done through chat rows.
"""

from __future__ import annotations

from functools import partial

from trainer.config import TrainConfig
from trainer.data import load_dataset_file, validate_sft
from trainer.errors import DataError
from trainer.encode import encode_sft, pack, packed_batch, pad_batch
from trainer.loop import StepLoss, train_loop
from trainer.losses import sft_loss_sum


def _pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return candidate


def sft_collate(seqs, pad_id: int, packed: bool) -> dict:
    batch = packed_batch(seqs, pad_id) if packed else pad_batch(seqs, pad_id)
    batch["units"] = int((batch["labels"][:, 1:] != -100).sum())
    batch["tokens"] = sum(len(s) for s in seqs)
    return batch


def sft_step_loss(model, batch) -> StepLoss:
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    logits = model(**inputs, use_cache=False).logits
    return StepLoss(sft_loss_sum(logits, batch["labels"]))


def prepare_sft(tokenizer, rows: list[dict], config: TrainConfig, source: str = "<rows>"):
    """Validate and encode rows; returns (examples, lengths, collate, n_truncated)."""
    validate_sft(rows, source)
    encoded = [e for e in encode_sft(tokenizer, rows, config.max_length) if sum(e.mask[1:]) > 0]
    truncated = sum(e.extra.get("truncated", False) for e in encoded)
    if not encoded:
        raise DataError(f"{source}: no row has an assistant token within max_length={config.max_length}")
    if config.packing:
        encoded = pack(encoded, config.max_length)
    collate = partial(sft_collate, pad_id=_pad_id(tokenizer), packed=config.packing)
    return encoded, [len(e) for e in encoded], collate, truncated


def train_sft(model, tokenizer, rows: list[dict], config: TrainConfig | None = None, out_dir: str | None = None,
              source: str = "<rows>") -> dict:
    """SFT `model` in place on `rows` ({"messages": [...]}); returns metrics (loss, tokens/s, steps...).

    With `out_dir`, writes config.json, metrics.jsonl and checkpoints (every config.save_steps) there, and resumes
    from the newest checkpoint when one exists. Pass a peft-wrapped model (trainer.lora.apply_lora) for LoRA.
    """
    config = config or TrainConfig()
    examples, lengths, collate, truncated = prepare_sft(tokenizer, rows, config, source)
    metrics = train_loop(model, examples, lengths, collate, sft_step_loss, config, out_dir, name="sft")
    return {**metrics, "examples": len(rows), "truncated": truncated}


def run_sft(model_name: str, data_path: str, out_dir: str, config: TrainConfig | None = None) -> dict:
    """File-based SFT: load `model_name` (local dir or tiny config), train on `data_path`, save to `out_dir`."""
    from trainer.session import finish, start

    config = config or TrainConfig()
    rows = load_dataset_file(data_path, "sft")
    model, tokenizer = start(model_name, config)
    metrics = train_sft(model, tokenizer, rows, config, out_dir, source=data_path)
    return finish(model, tokenizer, out_dir, config, metrics)
