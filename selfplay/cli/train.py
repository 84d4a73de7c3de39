"""`selfplay train sft|dpo|grpo|prm --model PATH_OR_TINY_NAME --data FILE --out DIR`: train a model on a dataset file.

What it is for: parsing flags (and an optional `--config` JSON/TOML of `trainer.config.TrainConfig` keys, flags win)
and running the trainer's file-based entry point; the trained model lands in DIR as a plain `from_pretrained`
checkpoint (LoRA merged, adapter in DIR/adapter), with config.json, metrics.jsonl and metrics.json beside it.
Re-running the same command resumes from the newest checkpoint in DIR (`--save-steps N` writes them).
What it does not do: any training itself (see the `trainer` package).
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable

from selfplay.core.errors import UserError

# flag -> TrainConfig key
FLAGS = {"epochs": int, "steps": int, "lr": float, "batch_size": int, "grad_accum": int, "max_length": int,
         "warmup_steps": int, "seed": int, "save_steps": int, "beta": float, "kl_coef": float,
         "clip_eps": float, "lora_r": int, "lora_alpha": int, "mixed_precision": str, "log_every": int}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("train", help="SFT / DPO / GRPO on a dataset file (LoRA or full fine-tune)",
                            description=__doc__.splitlines()[0])
    parser.add_argument("algorithm", choices=list(RUNNERS),
                        help="sft: {messages}; dpo: {prompt, chosen, rejected}; grpo: {prompt, completions, rewards}; "
                             "prm: {prompt, completions: [step...], labels: [bool...]} (a scalar head per step)")
    parser.add_argument("--step-separator", default=None, help="prm: the text that ends each step")
    parser.add_argument("--confidence", action="store_true",
                        help="prm: the head also reads each step's lowest token log-probability under the model's "
                             "own LM head; the backbone stays frozen (use the policy that wrote the steps)")
    parser.add_argument("--model", required=True, help="local model directory, or a built-in tiny config "
                                                       "(tiny-llama, tiny-qwen, micro-llama)")
    parser.add_argument("--data", required=True, help="JSONL or Parquet file in the design's dataset format")
    parser.add_argument("--out", required=True, help="output directory (re-run the same command to resume)")
    parser.add_argument("--config", help="JSON or TOML file of TrainConfig keys (a [train] table in TOML)")
    parser.add_argument("--lora", action="store_true", default=None, help="LoRA adapters instead of full fine-tune")
    parser.add_argument("--packing", action="store_true", default=None, help="SFT: pack examples into max_length rows")
    parser.add_argument("--ref-model", help="DPO/GRPO reference model directory (default: the starting model)")
    parser.add_argument("--no-resume", action="store_true", help="ignore checkpoints already in --out")
    parser.add_argument("--no-progress", action="store_true", help="no live progress line")
    for flag, kind in FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind, default=None,
                            help=f"override the TrainConfig key {flag} (see trainer/config.py)")
    parser.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    from trainer.config import TrainConfig, load_config

    try:
        config = load_config(args.config) if args.config else TrainConfig()
        overrides = {flag: getattr(args, flag) for flag in FLAGS if flag != "steps"}
        overrides.update(max_steps=args.steps, lora=args.lora, packing=args.packing)
        if args.no_resume:
            overrides["resume"] = False
        if args.no_progress:
            overrides["progress"] = "off"
        return config.replace(**overrides)
    except FileNotFoundError as exc:
        raise UserError(f"{args.config}: config file not found ({exc.strerror}); check the path") from None
    except (ValueError, TypeError) as exc:
        raise UserError(f"{args.config or 'flags'}: {exc}") from None


def _sft(args: argparse.Namespace, config: Any) -> dict:
    from trainer.sft import run_sft
    return run_sft(args.model, args.data, args.out, config)


def _dpo(args: argparse.Namespace, config: Any) -> dict:
    from trainer.dpo import run_dpo
    return run_dpo(args.model, args.data, args.out, config, ref_model_name=args.ref_model)


def _grpo(args: argparse.Namespace, config: Any) -> dict:
    from trainer.grpo import run_grpo
    return run_grpo(args.model, args.data, args.out, config, ref_model_name=args.ref_model)


def _prm(args: argparse.Namespace, config: Any) -> dict:
    from trainer.prm import run_prm
    return run_prm(args.model, args.data, args.out, config, separator=args.step_separator,
                   confidence=args.confidence)


# the trainers behind `selfplay train ALGORITHM` (the file-based entry points of the `trainer` package)
RUNNERS: dict[str, Callable[[argparse.Namespace, Any], dict]] = {"sft": _sft, "dpo": _dpo, "grpo": _grpo, "prm": _prm}


def run(args: argparse.Namespace) -> int:
    from trainer.errors import DataError, ModelNotFound, TrainerError

    config = build_config(args)
    try:
        summary = RUNNERS[args.algorithm](args, config)
    except DataError as exc:
        raise UserError(f"{exc}") from None
    except ModelNotFound as exc:
        raise UserError(f"--model {exc}") from None
    except TrainerError as exc:  # a setting, a chat template: the trainer's message names it
        raise UserError(f"{exc}") from None
    keys = ("steps", "final_loss", "train_loss", "tokens", "tokens_per_s", "rewards/accuracy", "reward_mean",
            "resumed_from", "model_dir")
    print(json.dumps({k: summary[k] for k in keys if k in summary}, default=str))
    return 0
