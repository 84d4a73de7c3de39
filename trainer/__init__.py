"""Trainer: SFT, DPO and GRPO on Hugging Face causal LMs, LoRA (peft) or full, with checkpoints.

Consumes the TRL-compatible dataset formats of the design (JSONL/Parquet). Imports nothing else of ours.
Heavy imports (torch, transformers) happen inside submodules, not here.

In-process API (the model stays in memory across rounds; each call trains it in place and returns metrics):
    trainer.models.load_model(name_or_path) -> (model, tokenizer)  # local dir, or tiny-llama / tiny-qwen / micro-llama
    trainer.sft.train_sft(model, tokenizer, rows, config) -> metrics
    trainer.dpo.train_dpo(model, tokenizer, rows, config, ref_model=None) -> metrics
    trainer.grpo.train_grpo(model, tokenizer, rows, config, ref_model=None) -> metrics
    trainer.lora.apply_lora(model, config) / merge_and_export(model, tokenizer, out_dir)
File-based entry points (behind `selfplay train sft|dpo|grpo`): trainer.sft.run_sft, trainer.dpo.run_dpo,
trainer.grpo.run_grpo. Config: trainer.config.TrainConfig. Math: trainer.losses.
Errors: one tree under trainer.errors.TrainerError (a ValueError): ConfigError, DataError, ModelError > ModelNotFound
(drawn in trainer.errors).
"""

# The public face: these submodules (imported on use; `from trainer import *` imports them, torch included).
__all__ = ["config", "data", "dpo", "encode", "errors", "grpo", "logps", "lora", "loop", "losses", "models", "prm",
           "progress", "session", "sft", "tiny"]
