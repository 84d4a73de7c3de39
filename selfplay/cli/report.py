"""`selfplay report DIR`: write DIR/report.md and DIR/report.html from a run's stored rounds.

What it is for: re-making the report of a run (finished, stopped or in progress) at any time.
What it does not do: change the run; it only reads the store.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from selfplay.core.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="write report.md and report.html for a run directory",
                            description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", help="a directory written by `selfplay run`, `selfplay demo` or `selfplay generate`")
    parser.add_argument("--title", default=None, help="the report's title (default: the directory name)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfplay.core.view import RunView
    from selfplay.pipeline.report import write_generate_report, write_report

    view = RunView(args.run_dir)
    if not view.exists():
        raise UserError(f"{args.run_dir} has no run store (run.db); pass a directory written by `selfplay run`")
    records = view.rounds()  # read-only: safe beside a running job
    if not records:  # no rounds at all: a `selfplay generate` directory
        report = write_generate_report(view.generate_totals(), args.run_dir,
                                       args.title or f"selfplay generate {Path(args.run_dir).name}")
        totals = report["totals"]
        print(f"generate run: {totals['candidates']} candidates, {totals['verified']} verified, "
              f"${totals['cost_usd']:.6g} -> {report['markdown']}, {report['html']}")
        return 0
    rounds = [{k: v for k, v in r.items() if k != "phase"} for r in records if r["phase"] == "done"]
    paths = write_report(rounds, args.run_dir, args.title or f"selfplay run {Path(args.run_dir).name}")
    print(f"{len(rounds)} rounds -> {paths['markdown']}, {paths['html']}")
    return 0
