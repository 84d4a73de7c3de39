"""Entry point of a math worker process: `python -m verifiers.math.worker_main IN_FD OUT_FD TARGET ...`.

What it is for: the body of every worker that `verifiers.math.worker.WorkerPool` starts. It runs
in a fresh interpreter of its own (never a fork or a multiprocessing child of the caller), so it
works whatever the caller is: a script piped on stdin, `python -c`, a script without a main
guard, a notebook, a Ray or DataLoader worker. It never imports the caller's `__main__`.

Protocol: two inherited pipe fds wrapped in `multiprocessing.connection.Connection`
(length-prefixed pickles). The worker sends "ready" after its imports and warm-up, then answers
each argument tuple with ("ok", result) or ("error", text). It exits when the parent closes its
end (EOF), and a watchdog thread exits it when the parent process disappears mid-computation; a
parent gone before "ready" or before a reply is a silent exit 0 (no BrokenPipeError traceback on the
terminal after a `kill -9` of the job).
Its own stdout is pointed at stderr, so nothing it prints can corrupt the caller's stdout.

What it does not do: sandbox untrusted code (only the *input* to our function is untrusted) or
enforce time limits (the parent kills a worker that overruns).
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

WATCHDOG_PERIOD_S = 1.0


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("usage: python -m verifiers.math.worker_main IN_FD OUT_FD TARGET WARMUP MEMORY_MB", file=sys.stderr)
        return 2
    in_fd, out_fd, target, warmup, memory_mb = int(argv[0]), int(argv[1]), argv[2], argv[3], int(argv[4])
    os.dup2(2, 1)  # prints (ours or a library's) go to stderr, never into the caller's stdout
    _start_watchdog(os.getppid())
    if memory_mb > 0:
        _limit_memory(memory_mb)
    inbox, outbox = Connection(in_fd, writable=False), Connection(out_fd, readable=False)
    function = resolve(target)
    if warmup:
        resolve(warmup)()
    try:
        outbox.send("ready")
    except (BrokenPipeError, ConnectionResetError):  # the parent died while we started: leave without a word
        return 0
    serve(inbox, outbox, function)
    return 0


def serve(inbox: Connection, outbox: Connection, function: Any) -> None:
    """Receive argument tuples, send back ("ok", result) or ("error", text), until EOF."""
    while True:
        try:
            args = inbox.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", function(*args))
        except MemoryError:
            reply = ("error", "MemoryError")
        except RecursionError:
            reply = ("error", "RecursionError")
        except Exception as exc:  # reported to the caller as data, never a silent wrong answer
            reply = ("error", f"{type(exc).__name__}: {exc}"[:300])
        try:
            outbox.send(reply)
        except (OSError, ValueError):
            return


def resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _start_watchdog(parent_pid: int) -> None:
    def watch() -> None:
        while True:
            time.sleep(WATCHDOG_PERIOD_S)
            if os.getppid() != parent_pid:
                os._exit(0)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _limit_memory(megabytes: int) -> None:
    try:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
