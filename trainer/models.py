"""Load and save models: a local `from_pretrained` directory, or a built-in tiny config by name.

What it is for: one entry point (`load_model`) that the CLI, the demo and the tests use, so a Qwen/Llama checkpoint
on a GPU and `tiny-llama` on a CPU go through the same code. Saving writes safetensors + tokenizer (with its chat
template) so `AutoModelForCausalLM/AutoTokenizer.from_pretrained(dir)` (and vLLM) load the result.
What it does not do: download. A name that is neither a local directory nor a tiny config is a `ModelNotFound` error.
"""

from __future__ import annotations

import os

from trainer.errors import ConfigError, ModelNotFound
from trainer.tiny import TINY_CONFIGS, build_tiny_model, build_tiny_tokenizer


def is_tiny_name(name: str) -> bool:
    return name in TINY_CONFIGS


def load_model(name_or_path: str, dtype: str | None = None, seed: int = 0):
    """Return `(model, tokenizer)`: built fresh for a tiny config name, else loaded from a local directory.

    `dtype` is a torch dtype name ("float32", "bfloat16", "float16") or None for the checkpoint's own / float32.
    """
    if is_tiny_name(name_or_path) and not os.path.isdir(name_or_path):
        tokenizer = build_tiny_tokenizer()
        model = build_tiny_model(name_or_path, tokenizer, seed=seed)
        return (model.to(_torch_dtype(dtype)) if dtype else model), tokenizer
    if not os.path.isdir(name_or_path):
        raise ModelNotFound(
            f"model {name_or_path!r} is neither a local directory nor a built-in tiny config "
            f"({', '.join(sorted(TINY_CONFIGS))}); this trainer never downloads from a hub: fetch it first "
            f"(e.g. `hf download ORG/NAME --local-dir DIR`) and pass the directory")
    if not os.path.isfile(os.path.join(name_or_path, "config.json")):
        raise ModelNotFound(f"{name_or_path}: no config.json here; pass a directory written by save_pretrained")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"local_files_only": True}
    if dtype:
        kwargs["dtype"] = _torch_dtype(dtype)
    model = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    return model, tokenizer


def save_model(model, tokenizer, out_dir: str) -> str:
    """Write model (safetensors) + tokenizer + generation config to `out_dir`; return the directory."""
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def count_parameters(model, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _torch_dtype(name: str):
    import torch

    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}[name]
    except KeyError:
        raise ConfigError(f"unknown dtype {name!r}: use float32, bfloat16 or float16") from None
