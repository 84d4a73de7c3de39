"""The `selfplay` command line: one subcommand per module in this package.

Each command module exposes `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
Errors the user can fix (`selfplay.core.errors.UserError`) print one clear message and exit 1; a budget stop
exits 3; a model server that went away mid-job (`EndpointLost`) exits 4 (start it, run the same command: the
job resumes); a loop that learned nothing exits 5; a generate job that ended with samples failed for good while its
server still answered exits 6 (the same command draws them again). Ctrl-C in any command exits 130 with one line ("run the same
command to resume"), never a traceback. Every `SelfplayError` prints its message without a traceback. This module
does no work of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys

from pydantic import ValidationError

from selfplay.core.errors import EXIT_USER_ERROR, BudgetStop, EndpointLost, SelfplayError, UserError

# Packages of the optional extras: a command needing one that is absent is listed as unavailable.
OPTIONAL_PACKAGES = {"torch", "transformers", "peft", "accelerate", "tokenizers", "safetensors", "ray", "vllm"}

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C
INTERRUPTED = "interrupted: what was finished is recorded; run the same command to resume"

# Module names under selfplay.cli, in the order `selfplay --help` lists them.
COMMANDS = ["generate", "run", "demo", "report", "export", "train", "serve", "mock_server", "prm_label"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="selfplay", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"selfplay {_version()}",
                        help="print the installed version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"selfplay.cli.{name}")
        except ImportError as exc:  # an optional extra is missing: say so, keep the rest usable
            if (exc.name or "").split(".")[0] not in OPTIONAL_PACKAGES:
                raise  # a broken import of our own is a bug, not a missing extra
            missing = sub.add_parser(name.replace("_", "-"), help=f"(unavailable: {exc})")
            missing.set_defaults(func=_unavailable(name, exc))
            continue
        module.register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("selfplay")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _unavailable(name: str, exc: ImportError):
    def run(_args) -> int:
        print(f"selfplay {name.replace('_', '-')}: needs an optional dependency that is not installed ({exc}). "
              f"Install it with: pip install 'selfplay[train]'", file=sys.stderr)
        return 1
    return run


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _run(args)
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C anywhere (asyncio.run turns it into a cancel)
        print(f"\n{INTERRUPTED}", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValidationError as exc:  # a flag-built config (e.g. `selfplay demo --rounds -1`) failed its own checks
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        print(f"error: invalid input: {problems}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (BudgetStop, EndpointLost) as exc:  # deliberate stops: what was done is recorded; the same command resumes
        print(f"stopped: {exc}", file=sys.stderr)
        return exc.exit_code
    except SelfplayError as exc:  # any other error of ours: its message and its exit code, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
