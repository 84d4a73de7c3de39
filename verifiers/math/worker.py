"""Run a function in persistent worker processes under a hard wall-clock limit.

What it is for: sympy can spend minutes (or all memory) on a power tower, a huge factorial or a
nested radical, and `signal.alarm` neither works outside the main thread nor interrupts C code.
A `WorkerPool` keeps up to `max_workers` processes alive and reuses them across calls
(throughput); a call that exceeds its limit gets its worker SIGKILLed and raises `HardTimeout`
after at most the limit plus a few milliseconds; a fresh worker replaces it on the next call.
Safe from many threads at once (each call owns one worker while it runs); async callers use
`asyncio.to_thread` (see `verifiers.math.averify`).

Worker start (imports, warm-up) is not charged to any call's time limit. Workers are forked from
the multiprocessing forkserver where the platform has one (fast respawn, and no fork of a
threaded parent), with the target module preloaded; else they are spawned.

Leaks: workers are daemon processes, are killed by `close()` and at interpreter exit (atexit),
exit on their own when the parent's end of their pipe closes, and (forkserver, Linux) receive
SIGKILL from the kernel when the forkserver dies with the parent. Each worker may also cap its
address space (`memory_limit_mb`) so a runaway computation fails instead of swapping.

What it does not do: sandbox untrusted code (the function is ours; only its *input* is untrusted),
or retry: a timed-out call is reported to the caller, never silently re-run.
"""

from __future__ import annotations

import atexit
import importlib
import multiprocessing
import threading
import time
import weakref
from multiprocessing.connection import Connection
from typing import Any

START_TIMEOUT_S = 120.0
_POOLS: "weakref.WeakSet[WorkerPool]" = weakref.WeakSet()


class HardTimeout(Exception):
    """The call ran past its time limit; its worker was killed."""


class WorkerCrashed(Exception):
    """The worker died (or could not start) before answering."""


class WorkerPool:
    """Up to `max_workers` reusable processes running `target` ("package.module:function")."""

    def __init__(self, target: str, *, max_workers: int = 2, warmup: str | None = None,
                 memory_limit_mb: int | None = 4096):
        self.target = target
        self.warmup = warmup
        self.memory_limit_mb = memory_limit_mb
        self.max_workers = max(1, max_workers)
        self._context = _context(target)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._live = 0
        self._lock = threading.Condition()
        self._closed = False
        _POOLS.add(self)

    def call(self, *args: Any, timeout: float) -> Any:
        """Run target(*args) in a worker; raise HardTimeout / WorkerCrashed, or re-raise its error."""
        worker = self._acquire()
        try:
            status, value = worker.call(args, timeout)
        except BaseException:
            self._discard(worker)
            raise
        self._release(worker)
        if status == "error":
            raise RuntimeError(value)
        return value

    def close(self) -> None:
        """Kill every worker, busy ones included (their calls get WorkerCrashed)."""
        with self._lock:
            self._closed = True
            workers, self._idle = list(self._workers), []
            self._lock.notify_all()
        for worker in workers:
            worker.kill()

    def _acquire(self) -> "_Worker":
        with self._lock:
            while True:
                if self._closed:
                    raise WorkerCrashed("pool closed")
                if self._idle:
                    return self._idle.pop()
                if self._live < self.max_workers:
                    self._live += 1
                    break
                self._lock.wait()
        try:
            worker = _Worker.start(self)
        except BaseException:
            with self._lock:
                self._live -= 1
                self._lock.notify()
            raise
        with self._lock:
            self._workers.add(worker)
        return worker

    def _release(self, worker: "_Worker") -> None:
        with self._lock:
            if self._closed:
                worker.kill()
            else:
                self._idle.append(worker)
            self._lock.notify()

    def _discard(self, worker: "_Worker") -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)
            self._live -= 1
            self._lock.notify()


class _Worker:
    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection):
        self.process = process
        self.conn = conn

    @classmethod
    def start(cls, pool: WorkerPool) -> "_Worker":
        parent_end, child_end = pool._context.Pipe()
        kill_with_server = pool._context.get_start_method() == "forkserver"
        process = pool._context.Process(
            target=serve, args=(child_end, pool.target, pool.warmup, pool.memory_limit_mb, kill_with_server),
            daemon=True, name="verifiers-worker")
        process.start()
        child_end.close()
        worker = cls(process, parent_end)
        if not parent_end.poll(START_TIMEOUT_S):
            worker.kill()
            raise WorkerCrashed("worker did not start")
        try:
            parent_end.recv()
        except (EOFError, OSError):
            worker.kill()
            raise WorkerCrashed("worker died while starting") from None
        return worker

    def call(self, args: tuple[Any, ...], timeout: float) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        try:
            self.conn.send(args)
            if not self.conn.poll(max(0.0, deadline - time.monotonic())):
                raise HardTimeout(f"no answer within {timeout:g}s")
            return self.conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            raise WorkerCrashed(f"worker exited with code {self.process.exitcode}") from None

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()


def serve(conn: Connection, target: str, warmup: str | None, memory_limit_mb: int | None,
          kill_with_server: bool) -> None:
    """Worker main loop: receive argument tuples, send back ("ok", result) or ("error", text)."""
    if kill_with_server:
        _die_with_parent()
    if memory_limit_mb:
        _limit_memory(memory_limit_mb)
    function = _resolve(target)
    if warmup:
        _resolve(warmup)()
    conn.send("ready")
    while True:
        try:
            args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", function(*args))
        except MemoryError:
            reply = ("error", "MemoryError")
        except Exception as exc:  # reported to the caller as data, never a silent wrong answer
            reply = ("error", f"{type(exc).__name__}: {exc}"[:300])
        conn.send(reply)


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _context(target: str) -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([target.partition(":")[0]])
        return context
    return multiprocessing.get_context("spawn")


def _die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL us when our parent (the forkserver) exits."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _limit_memory(megabytes: int) -> None:
    try:
        import resource

        limit = megabytes * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass


@atexit.register
def _close_all_pools() -> None:
    for pool in list(_POOLS):
        pool.close()

