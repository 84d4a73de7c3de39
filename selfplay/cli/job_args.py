"""Arguments every resumable job command shares: `--config`, `--out`, `--set KEY=VALUE`.

What it is for: one definition of those flags and their help, used by `generate` and `prm-label`.
What it does not do: load or validate the config (each job's config loader does).
"""

from __future__ import annotations

import argparse


def add_job_arguments(parser: argparse.ArgumentParser, sections: str, set_example: str) -> None:
    """`--config` (a TOML file with `sections`), `--out` (the run directory) and repeatable `--set`."""
    parser.add_argument("--config", required=True, help=f"TOML config ({sections})")
    parser.add_argument("--out", required=True, help="run directory (created; re-run the same command to resume)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a config key, e.g. --set {set_example} (repeatable)")
