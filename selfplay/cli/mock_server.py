"""`selfplay mock-server`: a scripted OpenAI-compatible endpoint for offline tests and benchmarks.

What it does: loads the script (built-in arithmetic script when --script is omitted), validates flags,
prints `selfplay mock-server listening on http://HOST:PORT/v1` on stdout once it accepts requests (with
--port 0 the port is a free one, so read this line), and serves until SIGINT/SIGTERM, then exits 0.
What it does NOT do: anything of the mock itself (see `selfplay.servers.mock`, docs/mock-server.md).
"""

from __future__ import annotations

import argparse
import sys

from selfplay.core.errors import UserError

FAULT_FLAGS = {"429": "fault_429", "500": "fault_500", "timeout": "fault_timeout",
               "malformed": "fault_malformed", "truncate": "fault_truncate"}


def register(subparsers) -> None:
    p = subparsers.add_parser("mock-server", help="serve a scripted mock OpenAI-compatible endpoint",
                              description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument("--script", metavar="FILE", help="rules file, .toml or .json (default: built-in arithmetic)")
    p.add_argument("--seed", type=int, default=0, help="seed of reply choice and fault draws (default 0)")
    p.add_argument("--latency-ms", type=float, default=0.0, help="fixed latency added to every completion")
    for kind, dest in FAULT_FLAGS.items():
        p.add_argument(f"--fault-{kind}", dest=dest, type=float, default=0.0, metavar="R",
                       help=f"fraction of attempts answered with a {kind} fault (0..1)")
    p.add_argument("--hang-s", type=float, default=30.0, help="how long a timeout fault holds a request")
    p.add_argument("--max-consecutive-faults", type=int, default=3,
                   help="after this many faults in a row for one identical request, serve it (default 3)")
    p.add_argument("--retry-after-ms", type=float, default=20.0, help="Retry-After of 429 faults (default 20)")
    p.add_argument("--max-n", type=int, default=None, help="answer 400 to requests with n above this")
    p.add_argument("--no-usage", action="store_true", help="omit the usage field from replies")
    p.add_argument("--batch-latency-s", type=float, default=0.0, help="seconds a batch stays in_progress")
    p.add_argument("--batch-outcome", choices=("completed", "expired", "failed"), default="completed",
                   help="how every batch ends (expired: half its lines answered)")
    p.set_defaults(func=run)


def build_config(args: argparse.Namespace):
    """A MockConfig from parsed flags; UserError names the bad flag or script."""
    from selfplay.servers.mock import FaultRates, MockConfig, default_script, load_script

    script = load_script(args.script) if args.script else default_script()
    try:
        faults = FaultRates({kind: getattr(args, dest) for kind, dest in FAULT_FLAGS.items()
                             if getattr(args, dest)})
    except ValueError as exc:
        raise UserError(f"--fault-*: {exc}") from None
    if args.latency_ms < 0 or args.hang_s < 0 or args.retry_after_ms < 0:
        raise UserError("--latency-ms, --hang-s and --retry-after-ms must be >= 0")
    if args.max_n is not None and args.max_n < 1:
        raise UserError("--max-n must be at least 1")
    if args.max_consecutive_faults < 0:
        raise UserError("--max-consecutive-faults must be >= 0")
    return MockConfig(script=script, seed=args.seed, latency_ms=args.latency_ms, faults=faults,
                      hang_s=args.hang_s, max_n=args.max_n, usage=not args.no_usage,
                      retry_after_s=args.retry_after_ms / 1000.0,
                      max_consecutive_faults=args.max_consecutive_faults,
                      batch_latency_s=max(0.0, args.batch_latency_s), batch_outcome=args.batch_outcome)


def run(args: argparse.Namespace) -> int:
    from selfplay.servers.mock.server import serve_forever

    config = build_config(args)

    def announce(port: int) -> None:
        print(f"selfplay mock-server listening on http://{args.host}:{port}/v1", flush=True)

    try:
        serve_forever(config, host=args.host, port=args.port, on_ready=announce)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
                        f"pick another --port or 0 for a free one") from None
    print("selfplay mock-server stopped", file=sys.stderr, flush=True)
    return 0
