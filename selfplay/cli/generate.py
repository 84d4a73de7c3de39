"""`selfplay generate --config gen.toml --out DIR`: K candidates per task, budget-capped and resumable.

What it is for: parsing flags into a `GenerateConfig` and running the generate job; exit 0 when
done, 3 when a budget cap stopped it, 4 when the model server stopped answering mid-job (`EndpointLost`: start
it and run the same command), 6 when tasks kept samples that failed after every retry
(the same command draws them again), 1 on bad input, 130 when interrupted.
What it does not do: any of the work (see `selfplay.jobs.generate`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from selfplay.config.generate import load_generate_config
from selfplay.cli.job_args import add_job_arguments
from selfplay.core.errors import EXIT_BUDGET, EXIT_INCOMPLETE, EndpointLost

FLAG_KEYS = {"k": "generate.k", "concurrency": "generate.concurrency", "max_tokens": "generate.max_tokens",
             "temperature": "generate.temperature", "seed": "generate.seed", "tasks": "generate.tasks",
             "model": "model.name", "base_url": "model.base_url", "budget_usd": "budget.usd",
             "budget_tokens": "budget.tokens", "budget_minutes": "budget.minutes"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("generate", help="sample K candidates per task from an LLM (budget-capped, resumable)",
                            description=__doc__.splitlines()[0])
    add_job_arguments(parser, "[model], [generate], [budget], [prices]", "generate.k=4")
    for flag, key in FLAG_KEYS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None, help=f"override {key}")
    parser.add_argument("--batch", action="store_true",
                        help="send requests through the provider's Batch API at its batch price ([model] batch)")
    parser.add_argument("--no-progress", action="store_true", help="no live display")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfplay.jobs.generate import GenerateJob

    overrides = list(args.set) + [f"{key}={_toml_value(getattr(args, flag))}" for flag, key in FLAG_KEYS.items()
                                  if getattr(args, flag) is not None] + (["model.batch=true"] if args.batch else [])
    config = load_generate_config(args.config, overrides)
    job = GenerateJob(config, args.out, show_progress=False if args.no_progress else None)
    summary = asyncio.run(job.run())
    print(json.dumps({k: summary[k] for k in ("stopped_reason", "candidates", "tasks_complete", "tasks",
                                              "requests", "cost_usd", "cache_hits", "errors", "errors_unresolved")}))
    if summary["stopped_reason"] == "endpoint_lost":
        raise EndpointLost(summary["endpoint_lost"])  # `selfplay.cli` prints it, no traceback, exit 4
    if summary["stopped_reason"] == "budget":
        print(f"stopped: budget cap ({summary['budget_cap']}) reached: {summary.get('budget_stop')}; raise [budget] "
              f"and run the same command to continue", file=sys.stderr)
        return EXIT_BUDGET
    if summary["stopped_reason"] == "incomplete":
        print(f"incomplete: {summary['tasks'] - summary['tasks_complete']} of {summary['tasks']} tasks have samples "
              f"that failed after every retry (this session's errors by kind: {summary['errors']}; each kind is "
              f"explained in README 'Failures'); fix the cause (e.g. the model name, base_url, max_tokens) and run the "
              f"same command to draw them again: what is stored is kept", file=sys.stderr)
        return EXIT_INCOMPLETE
    if summary["stopped_reason"] == "interrupted":
        from selfplay.cli import EXIT_INTERRUPTED, INTERRUPTED

        print(INTERRUPTED, file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def _toml_value(raw: str) -> str:
    """Flags arrive as text: numbers stay numbers, anything else becomes a TOML string."""
    try:
        float(raw)
        return raw
    except ValueError:
        return json.dumps(raw)
