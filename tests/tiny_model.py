"""Tiny causal LMs for the backend tests: a built-in `micro-llama` (random weights) and its byte-level tokenizer.

What it is for: real `transformers` models small enough that a forward pass takes milliseconds on one CPU
thread, with a real chat template and eos, so the local backend, `selfplay serve` and the benchmark run
the same code paths they run on a real checkpoint. Built through `trainer.tiny` (the same tiny configs
`selfplay serve --model tiny-llama` uses); `save_tiny(dir)` writes a `from_pretrained` directory.
What it does not do: produce sensible text (weights are random), or download anything.
"""

from __future__ import annotations

import os

import torch

from trainer.tiny import build_tiny_model, build_tiny_tokenizer


def tiny_pair(name: str = "micro-llama", seed: int = 0, spread: float = 0.3):
    """(model, tokenizer) in eval mode, deterministic given `seed`.

    `spread` re-draws the weight matrices with that standard deviation: at the default init (0.02) a random
    model repeats one token greedily, which would make "equals plain generate" tests pass too easily.
    """
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(name, tokenizer, seed=seed).eval()
    if spread:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() > 1:
                    param.copy_(torch.randn(param.shape, generator=generator) * spread)
    return model, tokenizer


def save_tiny(out_dir: str, name: str = "micro-llama", seed: int = 0, spread: float = 0.3) -> str:
    """Write a tiny model + tokenizer with `save_pretrained`; return the directory."""
    model, tokenizer = tiny_pair(name, seed, spread)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def chat_ids(tokenizer, messages) -> list[int]:
    """The prompt ids a chat backend should send: chat template + generation prompt, no extra specials."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def greedy_ids(model, prompt_ids: list[int], max_new_tokens: int, eos_id: int) -> list[int]:
    """Plain `model.generate` greedy continuation, cut after the first eos (the reference for the backends)."""
    out = model.generate(torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                         max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos_id, pad_token_id=eos_id)
    ids = out[0, len(prompt_ids):].tolist()
    return ids[:ids.index(eos_id) + 1] if eos_id in ids else ids


def use_one_thread() -> None:
    """Tests share a small machine: one torch thread keeps timings predictable."""
    torch.set_num_threads(1)
