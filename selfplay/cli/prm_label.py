"""`selfplay prm-label --config prm.toml --out DIR`: Math-Shepherd step labels, budget-capped and resumable.

What it is for: parsing flags into a `PrmLabelConfig` and running the prm-label job; exit 0 when done,
3 when a budget cap stopped it (re-run the same command with a higher cap to continue), 1 on bad input.
What it does not do: any of the work (see `selfplay.jobs.prm_label`), or train the PRM (`selfplay train prm`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from selfplay.cli.job_args import add_job_arguments
from selfplay.core.errors import EXIT_BUDGET

SHOWN = ("stopped_reason", "candidates", "duplicates", "rows", "left_out", "steps", "positive_step_fraction", "requests",
         "cache_hits", "cost_usd")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("prm-label", help="label solution steps by rollouts from each prefix (Math-Shepherd)",
                            description=__doc__.splitlines()[0])
    add_job_arguments(parser, "[model], [prm_label], [budget], [prices]", "prm_label.rollouts=4")
    parser.add_argument("--no-progress", action="store_true", help="accepted for symmetry; this job prints no display")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfplay.config.prm_label import load_prm_label_config
    from selfplay.jobs.prm_label import PrmLabelJob

    config = load_prm_label_config(args.config, list(args.set))
    summary = asyncio.run(PrmLabelJob(config, args.out).run())
    print(json.dumps({key: summary.get(key) for key in SHOWN}))
    if summary["stopped_reason"] == "budget":
        print(f"stopped: budget cap ({summary['budget_cap']}) reached; raise [budget] and run the same command "
              f"to continue", file=sys.stderr)
        return EXIT_BUDGET
    return 0
