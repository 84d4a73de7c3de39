"""LoRA through `peft`: wrap a model, run it with adapters off (the reference), merge and export a plain checkpoint.

What it is for: LoRA vs full fine-tuning is one config switch; with LoRA the DPO/GRPO reference is the same weights
with adapters disabled (no second model in memory); `merge_and_export` writes a checkpoint that plain
`from_pretrained` and vLLM load.
What it does not do: quantisation (QLoRA) or adapter hot-swapping in a serving engine.
"""

from __future__ import annotations

import contextlib


def is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def apply_lora(model, config):
    """Wrap `model` with fresh LoRA adapters (r, alpha, dropout, target modules from a TrainConfig); base frozen."""
    from peft import LoraConfig, get_peft_model

    lora_config = LoraConfig(
        task_type="CAUSAL_LM", r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
    )
    return get_peft_model(model, lora_config)


def reference_context(model):
    """Context in which `model` computes reference log-probs: adapters disabled for a peft model, else unchanged."""
    return model.disable_adapter() if is_peft(model) else contextlib.nullcontext()


def merge_and_export(model, tokenizer, out_dir: str, adapter_dir: str | None = None) -> str:
    """Save the adapter (optional), then merge it into the base weights and save a plain checkpoint to `out_dir`.

    The merge happens on the model passed in (peft's merge_and_unload): keep using the returned directory afterwards.
    """
    from trainer.models import save_model

    if adapter_dir:
        model.save_pretrained(adapter_dir)
        tokenizer.save_pretrained(adapter_dir)
    merged = model.merge_and_unload() if is_peft(model) else model
    return save_model(merged, tokenizer, out_dir)
