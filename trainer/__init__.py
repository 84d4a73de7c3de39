"""Trainer: SFT, DPO and GRPO on Hugging Face causal LMs, LoRA (peft) or full, with checkpoints.

Consumes the TRL-compatible dataset formats of the design (JSONL/Parquet). Imports nothing else of ours.
Heavy imports (torch, transformers) happen inside submodules, not here.
"""
