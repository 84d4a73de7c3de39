"""`selfplay serve`: an OpenAI-compatible server over a local checkpoint (or a built-in tiny model).

What it does: loads `--model` (a `save_pretrained` directory, a LoRA adapter directory over a local base, or a
built-in tiny name such as `tiny-llama`) into the in-process `local` backend, prints
`selfplay serve listening on http://HOST:PORT/v1 (model NAME)` on stdout once it accepts requests (with
--port 0 the port is a free one, so read this line), and serves `/v1/chat/completions`, `/v1/models` and
`/health` until SIGINT / SIGTERM, then exits 0.
What it does NOT do: download models, authenticate clients, or stream (see `selfplay.servers.serve`).
"""

from __future__ import annotations

import argparse
import sys

from selfplay.config.common import ModelSection
from selfplay.core.errors import UserError
from selfplay.pipeline.llm import Engine, build_backend, set_torch_threads

DTYPES = ("float32", "bfloat16", "float16")


def register(subparsers) -> None:
    p = subparsers.add_parser("serve", help="serve a local model over an OpenAI-compatible HTTP API",
                              description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, metavar="PATH_OR_TINY_NAME",
                   help="checkpoint directory, LoRA adapter directory, or a built-in tiny model name")
    p.add_argument("--served-model-name", metavar="NAME",
                   help="model id clients must send (default: the --model value)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--dtype", choices=DTYPES, default=None, help="weights dtype (default: the checkpoint's)")
    p.add_argument("--hourly-usd", type=float, default=0.0,
                   help="hardware price per hour; replies are priced at this x measured time (default 0)")
    p.add_argument("--max-batch-rows", type=int, default=256,
                   help="most sampled rows (sum of n) decoded in one batch (default 256)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: $SELFPLAY_TORCH_THREADS, else 1 on a machine with 2 CPUs or "
                        "fewer, else torch's choice)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from selfplay.servers.serve.server import serve_forever

    _check_flags(args)
    llm = load_backend(args)

    def announce(port: int) -> None:
        print(f"selfplay serve listening on http://{args.host}:{port}/v1 (model {llm.model})", flush=True)

    try:
        serve_forever(llm, host=args.host, port=args.port, on_ready=announce)
    except OSError as exc:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
                        f"pick another --port or 0 for a free one") from None
    print("selfplay serve stopped", file=sys.stderr, flush=True)
    return 0


def _check_flags(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: must be between 0 and 65535")
    if args.hourly_usd < 0:
        raise UserError("--hourly-usd must be >= 0")
    if args.max_batch_rows < 1:
        raise UserError("--max-batch-rows must be at least 1")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be at least 1")


def load_backend(args: argparse.Namespace):
    """The local backend over `--model` (built by the LLM factory); UserError when it is neither a checkpoint or
    adapter directory nor a tiny name."""
    from agents.llm.local_loading import default_device

    set_torch_threads(args.threads)
    section = ModelSection(name=args.served_model_name or args.model, backend="local", path=args.model,
                           device=args.device or default_device(), dtype=args.dtype, hourly_usd=args.hourly_usd)
    return build_backend(section, engine=Engine(max_batch_rows=args.max_batch_rows), source="--model")
