"""`selfplay demo [--seed S] [--out DIR] [--arms sft,dpo,grpo,majority,control]`: a tiny model teaches itself addition.

What it is for: running `selfplay.jobs.demo` with a live display, then printing the per-round table of
the arms (default `sft,control`) and where the report and `demo.json` are. Re-running the same command resumes.
What it does not do: the work (see `selfplay.jobs.demo`).
"""

from __future__ import annotations

import argparse
import asyncio
import time

from selfplay.progress import PhaseProgress, progress_enabled


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("demo", help="watch a tiny model teach itself 2-digit addition (CPU, no network)",
                            description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the tasks, sampling and training")
    parser.add_argument("--out", default="runs/demo", help="directory of the two arms' runs (re-run to resume)")
    parser.add_argument("--rounds", type=int, default=4, help="self-improvement rounds per arm")
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run (tests): tiny sizes")
    parser.add_argument("--arms", default="sft,control",
                        help="comma-separated arms, each from the same cold start: sft, dpo, grpo, majority, control")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (e.g. 0,1,2): every arm at each seed in "
                        "OUT/seed-S, then a table of mean and spread per arm and one plot (OUT/seeds.md, seeds.html); "
                        "replaces --seed")
    parser.add_argument("--no-progress", action="store_true", help="no live display")
    parser.add_argument("--serve", action="store_true", help="the self-improvement arm samples from a `selfplay "
                        "serve` process this command starts and stops (a LoRA adapter per round; selfplay.jobs.demo_serve)")
    parser.add_argument("--server", choices=("selfplay", "vllm"), default="selfplay",
                        help="with --serve: what serves the self-improvement arm: `selfplay serve` (default) or a real "
                        "vLLM OpenAI server (run from .venv-vllm: `make venv-vllm`)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfplay.jobs.demo import DEFAULT_ARMS, demo_summary_line, demo_table, parse_arms, run_demo
    from selfplay.core.errors import UserError

    try:
        arms = parse_arms(args.arms)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.server != "selfplay" and not args.serve:
        raise UserError(f"--server {args.server} picks the server of --serve; add --serve or drop --server")
    if args.serve:
        if arms != DEFAULT_ARMS:
            raise UserError(f"--serve runs the sft and control arms only; drop --arms {args.arms} or --serve")
        from selfplay.jobs.demo_serve import run_cli
        return run_cli(args)
    if args.seeds is not None:
        return _run_seeds(args, arms)
    started = time.monotonic()
    with PhaseProgress(enabled=progress_enabled() and not args.no_progress) as progress:
        outcome = asyncio.run(run_demo(args.out, seed=args.seed, rounds=args.rounds, quick=args.quick,
                                       progress=progress, arms=arms))
    print(demo_table(outcome))
    print(f"{demo_summary_line(outcome['result'])}, {time.monotonic() - started:.0f} s")
    print(f"report: {args.out}/report.md, {args.out}/report.html; figures: {args.out}/demo.json")
    return 0


def _run_seeds(args: argparse.Namespace, arms: tuple[str, ...]) -> int:
    """--seeds: every arm at every seed (selfplay.jobs.demo_seeds), then the table across seeds."""
    from selfplay.core.errors import UserError
    from selfplay.jobs.demo_seeds import parse_seeds, run_seeds, seeds_table

    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.serve:
        raise UserError("--serve runs one seed; drop --seeds or --serve")
    started = time.monotonic()
    with PhaseProgress(enabled=progress_enabled() and not args.no_progress) as progress:
        summary = asyncio.run(run_seeds(args.out, seeds=seeds, rounds=args.rounds, quick=args.quick,
                                        progress=progress, arms=arms))
    print(seeds_table(summary))
    print(f"{time.monotonic() - started:.0f} s; per seed: {args.out}/seed-S/report.md; across seeds: "
          f"{args.out}/seeds.md, {args.out}/seeds.html, {args.out}/seeds.json")
    return 0
