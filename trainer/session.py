"""Start and finish a file-based training run: load the model (+ LoRA), and save the result where it belongs.

What it is for: the part every `run_*` entry point shares, so `selfplay train sft|dpo|grpo` behave alike:
the final model lands in `out_dir` as a plain `from_pretrained` checkpoint (LoRA merged; the adapter alone in
`out_dir/adapter`), plus `metrics.json` with the summary.
What it does not do: training itself.
"""

from __future__ import annotations

import json
import os

from trainer.lora import apply_lora, merge_and_export
from trainer.models import load_model


def start(model_name: str, config):
    model, tokenizer = load_model(model_name, seed=config.seed)
    if config.lora:
        model = apply_lora(model, config)
    return model, tokenizer


def finish(model, tokenizer, out_dir: str, config, metrics: dict) -> dict:
    from accelerate import PartialState

    state = PartialState()
    state.wait_for_everyone()
    if state.is_main_process:
        adapter_dir = os.path.join(out_dir, "adapter") if config.lora else None
        merge_and_export(model, tokenizer, out_dir, adapter_dir=adapter_dir)
        with open(os.path.join(out_dir, "metrics.json"), "w") as fh:
            json.dump(metrics, fh, indent=2, default=str)
    return {**metrics, "model_dir": out_dir}
