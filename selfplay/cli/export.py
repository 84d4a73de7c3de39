"""`selfplay export RUN_DIR --format sft|dpo|grpo|grpo-prompts|prm --out FILE`: a run directory as a TRL / `datasets` file.

What it is for: turning what `selfplay generate` or `selfplay run` verified into a training file (JSONL or Parquet,
by the suffix of FILE) that `datasets.load_dataset("json"/"parquet", data_files=FILE)` and TRL's trainers load.
What it does not do: the selection itself (see `selfplay.pipeline.export`), or change the run directory (it only reads it).
"""

from __future__ import annotations

import argparse

CAP_PER_TASK = 4  # selfplay.pipeline.export.CAP_PER_TASK (not imported here: `selfplay --help` stays light)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("export", help="write a run directory's verified candidates as a TRL dataset file",
                            description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a directory written by `selfplay generate` or `selfplay run`")
    parser.add_argument("--format", required=True, choices=["sft", "dpo", "grpo", "grpo-prompts", "prm"],
                        help="sft: messages of passing candidates; dpo: prompt/chosen/rejected pairs of a task; "
                             "grpo: prompt/completions/rewards groups (selfplay train grpo); grpo-prompts: prompt + "
                             "answer per training task (TRL's GRPOTrainer with verifiers.reward.as_reward_function); "
                             "prm: the step labels of `selfplay prm-label`")
    parser.add_argument("--dedup", action=argparse.BooleanOptionalAction, default=True,
                        help="sft: one row per distinct answer text of a task (default: on; --no-dedup keeps copies)")
    parser.add_argument("--cap-per-task", type=int, default=CAP_PER_TASK,
                        help=f"sft: at most this many rows per task, best-scoring first (default {CAP_PER_TASK}; "
                             "0: no cap)")
    parser.add_argument("--min-score", type=float, default=None,
                        help="count a candidate as passing only when its verdict's score is at least this")
    parser.add_argument("--max-pairs", type=int, default=4, help="dpo: at most this many pairs per task (default 4)")
    parser.add_argument("--out", required=True, help="the file to write: NAME.jsonl or NAME.parquet")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfplay.pipeline.export import export_run

    result = export_run(args.run_dir, args.format, args.out, min_score=args.min_score, max_pairs=args.max_pairs,
                        dedup=args.dedup, cap_per_task=args.cap_per_task or None)
    print(f"{result['rows']} {result['format']} rows -> {result['path']}")
    return 0
