"""Run a function in persistent worker processes under a hard wall-clock limit.

What it is for: sympy can spend minutes (or all memory) on a power tower, a huge factorial or a
nested radical, and `signal.alarm` neither works outside the main thread nor interrupts C code.
A `WorkerPool` keeps up to `max_workers` processes alive and reuses them across calls
(throughput); a call that exceeds its limit gets its worker SIGKILLed and raises `HardTimeout`
after at most the limit plus a few milliseconds; a fresh worker replaces it on the next call.
Safe from many threads at once (each call owns one worker while it runs); async callers use
`asyncio.to_thread` (see `verifiers.math.averify`).

Worker start (imports, warm-up) is not charged to any call's time limit. Each worker is a fresh
interpreter of our own entry point, `python -m verifiers.math.worker_main` (subprocess.Popen with
two inherited pipes; see that module): never a fork of the caller and never a multiprocessing
child, so it works from any caller (`python - < script`, `python -c`, a script without a main
guard, notebooks, threads, Ray or DataLoader workers) and never imports the caller's `__main__`.
POSIX only (inherited pipe fds).

Leaks: workers run in their own session (a Ctrl-C in the caller's terminal does not reach them),
are killed by `close()` and at interpreter exit (atexit), exit on their own when the parent's end
of their pipe closes (EOF), and a watchdog thread in each worker exits it within a second when the
parent process disappears mid-computation. Each worker may also cap its address space
(`memory_limit_mb`) so a runaway computation fails instead of swapping.

What it does not do: sandbox untrusted code (the function is ours; only its *input* is untrusted),
or retry: a timed-out call is reported to the caller, never silently re-run.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 120.0
ENTRY_POINT = "verifiers.math.worker_main"
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)
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
        worker.kill(wait=False)  # the caller gets its HardTimeout now; a thread reaps the process
        with self._lock:
            self._workers.discard(worker)
            self._live -= 1
            self._lock.notify()


class _Worker:
    def __init__(self, process: subprocess.Popen, inbox: Connection, outbox: Connection):
        self.process = process
        self.inbox = inbox    # replies from the worker
        self.outbox = outbox  # argument tuples to the worker

    @classmethod
    def start(cls, pool: WorkerPool) -> "_Worker":
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        command = [sys.executable, "-m", ENTRY_POINT, str(to_child_r), str(from_child_w), pool.target,
                   pool.warmup or "", str(pool.memory_limit_mb or 0)]
        try:
            process = subprocess.Popen(command, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                       cwd=_PACKAGE_ROOT, env=_worker_env(), start_new_session=True,
                                       close_fds=True)
        except OSError as exc:
            for fd in (to_child_r, to_child_w, from_child_r, from_child_w):
                os.close(fd)
            raise WorkerCrashed(f"worker could not start: {exc}") from None
        os.close(to_child_r)
        os.close(from_child_w)
        worker = cls(process, Connection(from_child_r, writable=False), Connection(to_child_w, readable=False))
        try:
            ready = worker.inbox.poll(START_TIMEOUT_S) and worker.inbox.recv() == "ready"
        except (EOFError, OSError):
            ready = False
        if not ready:
            worker.kill()
            raise WorkerCrashed(f"worker did not start (exit code {process.poll()})")
        return worker

    def call(self, args: tuple[Any, ...], timeout: float) -> tuple[str, Any]:
        deadline = time.monotonic() + timeout
        try:
            self.outbox.send(args)
            if not self.inbox.poll(max(0.0, deadline - time.monotonic())):
                raise HardTimeout(f"no answer within {timeout:g}s")
            return self.inbox.recv()
        except (EOFError, OSError, BrokenPipeError):
            raise WorkerCrashed(f"worker exited with code {self.process.poll()}") from None

    def kill(self, wait: bool = True) -> None:
        if self.process.poll() is None:
            try:
                self.process.kill()
            except OSError:
                pass
        if wait:
            self._reap()
        else:
            threading.Thread(target=self._reap, name="verifiers-reaper", daemon=True).start()

    def _reap(self) -> None:
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for conn in (self.inbox, self.outbox):
            try:
                conn.close()
            except OSError:
                pass


def _worker_env() -> dict[str, str]:
    """The caller's environment, with our package root first on PYTHONPATH (found from any cwd)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT, *filter(None, [env.get("PYTHONPATH")])])
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@atexit.register
def _close_all_pools() -> None:
    for pool in list(_POOLS):
        pool.close()

