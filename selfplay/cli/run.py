"""`selfplay run [--config] CONFIG.toml --out DIR`: the self-improvement loop, resumable and budget-capped.

What it is for: parsing flags, loading the `RunConfig`, running `RunJob` with a live display, and
printing the per-round table. Exit 0 when all rounds are done and the policy improved, 5 when the loop
learned nothing (no round trained, or held-out pass@1 never rose: one message with what to change), 3 when a
budget cap stopped the loop (the round state is recorded; raise the cap and run the same command to continue),
1 on bad input, 130 on Ctrl-C.
What it does not do: any of the work (see `selfplay.jobs.loop`).
"""

from __future__ import annotations

import argparse
import asyncio

from selfplay.core.errors import UserError
from selfplay.progress import PhaseProgress, progress_enabled


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="the self-improvement loop: generate, verify, select, train, evaluate",
                            description=__doc__.splitlines()[0])
    parser.add_argument("config_path", nargs="?", metavar="CONFIG",
                        help="TOML config ([model], [tasks], [generate], [select], [train], [eval], [loop], [budget]); "
                             "or pass it as --config")
    parser.add_argument("--config", dest="config_flag", metavar="CONFIG", default=None,
                        help="the TOML config (the same as the positional CONFIG)")
    parser.add_argument("--out", required=True, help="run directory (created; re-run the same command to resume)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set loop.rounds=2 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no live display (the round lines still print)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfplay.jobs.loop import NoImprovement, RunJob, improvement_problem
    from selfplay.config.run import load_run_config

    if args.config_path and args.config_flag and args.config_path != args.config_flag:
        raise UserError(f"two configs given ({args.config_path} and --config {args.config_flag}); pass one")
    path = args.config_flag or args.config_path
    if not path:
        raise UserError("no config: pass it as `selfplay run CONFIG.toml --out DIR` or `--config CONFIG.toml`")
    config = load_run_config(path, args.set)
    with PhaseProgress(enabled=progress_enabled() and not args.no_progress) as progress:
        rounds = asyncio.run(RunJob(config, args.out, progress=progress).run())
    print(round_table(rounds))
    print(f"report: {args.out}/report.md, {args.out}/report.html")
    problem = improvement_problem(rounds, config)
    if problem:  # a loop asked to improve the policy that did not: one message, exit 5 (issue 26)
        raise NoImprovement(problem)
    return 0


def round_table(rounds: list[dict]) -> str:
    from selfplay.pipeline.report import round_status

    lines = [f"{'round':>5} {'pass@1':>7} {'pass@k':>7} {'maj@k':>7} {'yield':>6} {'samples':>8} {'tokens':>9} "
             f"{'seconds':>8}  kept"]
    notes = []
    for r in rounds:
        yield_ = f"{r['yield']:.3f}" if r.get("yield") is not None else "-"
        status = round_status(r)
        lines.append(f"{r['round']:>5} {r.get('eval_pass@1', 0):>7.3f} {r.get('eval_pass@k', 0):>7.3f} "
                     f"{r.get('eval_maj@k', 0):>7.3f} {yield_:>6} "
                     f"{r.get('samples', 0) or 0:>8} {r.get('completion_tokens', 0) or 0:>9} {r.get('seconds', 0):>8.1f}"
                     f"  {status.split(':')[0]}")
        if status != "yes":
            notes.append(f"round {r['round']} {status}")
    return "\n".join(lines + notes)
