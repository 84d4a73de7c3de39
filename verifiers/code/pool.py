"""A pool of warm sandbox workers (zygotes), shared by `verify` and `run_python`.

What it is for: starting a fenced-in interpreter costs tens of milliseconds; forking a job from a
warm one costs about one. A `SandboxPool` keeps `size` zygotes (`zygote.py`) started, each with its
own unprivileged uid (so RLIMIT_NPROC, which counts per uid, bounds each one separately), hands them
to callers one job at a time (thread-safe), replaces a zygote that died or stopped answering, and
logs (once, loudly) any isolation the kernel refused. `SandboxConfig.require_isolation` turns that
warning into a refusal to run.

What it does NOT do: judge results (see `harness.py`) or run anything in this process. A zygote that
misbehaves is killed and restarted; its job is reported as a sandbox error, never as a verdict.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

log = logging.getLogger("verifiers.code")
ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote.py")
START_TIMEOUT_S = 30.0
REPLY_GRACE_S = 5.0


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, died, refused to run): not the candidate's fault."""


@dataclass(frozen=True)
class SandboxConfig:
    """Knobs of the sandbox. Environment: SELFPLAY_SANDBOX_REQUIRE_ISOLATION=1 sets require_isolation."""

    size: int = 0  # warm workers; 0 = min(4, cpu count)
    max_output_bytes: int = 8 << 20  # per stream; also RLIMIT_FSIZE
    max_procs: int = 32  # RLIMIT_NPROC (processes + threads of the sandbox uid)
    max_files: int = 64  # RLIMIT_NOFILE
    tmp_size_mb: int = 256  # tmpfs holding the work dirs
    namespaces: tuple[str, ...] = ("net", "pid", "mount", "ipc", "uts")
    require_isolation: bool = field(
        default_factory=lambda: os.environ.get("SELFPLAY_SANDBOX_REQUIRE_ISOLATION", "") not in ("", "0"))
    uid_base: int = 0  # 0 = derived from our pid, so concurrent verifier processes use distinct uids

    def workers(self) -> int:
        return self.size or max(1, min(4, os.cpu_count() or 1))

    def uid_for(self, slot: int) -> int:
        base = self.uid_base or 1_000_000 + (os.getpid() % 100_000) * 64
        return base + slot


class Worker:
    """One zygote process and its two pipes."""

    def __init__(self, config: SandboxConfig, slot: int):
        self.config, self.slot = config, slot
        cmd_r, self._cmd_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", ZYGOTE, str(cmd_r), str(reply_w)], pass_fds=(cmd_r, reply_w),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}, close_fds=True,
            start_new_session=True)
        os.close(cmd_r)
        os.close(reply_w)
        try:
            self._send({"namespaces": list(config.namespaces), "uid": config.uid_for(slot),
                        "tmp_size_mb": config.tmp_size_mb})
            hello = self._receive(time.monotonic() + START_TIMEOUT_S)
        except SandboxError as exc:
            self.close()
            raise SandboxError(f"sandbox worker failed to start: {exc}: {self._stderr()}") from None
        self.isolation: dict = hello["isolation"]

    def run(self, job: dict, timeout_s: float) -> dict:
        """Send one job, wait for its reply; SandboxError (and a dead worker) if none comes in time."""
        self._send(job)
        reply = self._receive(time.monotonic() + timeout_s + REPLY_GRACE_S)
        if "error" in reply:
            raise SandboxError(f"sandbox worker fault: {reply['error']}")
        return reply

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        for fd in (self._cmd_w, self._reply_r):
            try:
                os.close(fd)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()  # the zygote (PID 1 of its namespace) dies with it: PR_SET_PDEATHSIG
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()

    def _send(self, message: dict) -> None:
        body = json.dumps(message).encode()
        data = struct.pack(">I", len(body)) + body
        try:
            while data:
                data = data[os.write(self._cmd_w, data):]
        except OSError as exc:
            raise SandboxError(f"worker pipe closed ({exc})") from None

    def _receive(self, deadline: float) -> dict:
        header = self._read_exactly(4, deadline)
        body = self._read_exactly(struct.unpack(">I", header)[0], deadline)
        return json.loads(body)

    def _read_exactly(self, n: int, deadline: float) -> bytes:
        chunks, got = [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._reply_r], [], [], remaining)[0]:
                raise SandboxError("worker did not answer in time")
            chunk = os.read(self._reply_r, min(n - got, 1 << 20))
            if not chunk:
                raise SandboxError("worker exited")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _stderr(self) -> str:
        try:
            self.proc.wait(timeout=1)
            return self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
        except (subprocess.TimeoutExpired, OSError, ValueError):
            return ""


class SandboxPool:
    """Thread-safe pool of warm workers, started lazily, closed at exit."""

    def __init__(self, config: SandboxConfig | None = None):
        self.config = config or SandboxConfig()
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._free_slots = list(range(self.config.workers()))
        self._lock = threading.Lock()
        self._all: set[Worker] = set()
        self._warned = False
        self._pid = os.getpid()
        atexit.register(self.close)

    def run(self, job: dict, timeout_s: float) -> tuple[dict, dict]:
        """Run one job on a warm worker; returns (reply, isolation report)."""
        worker = self._acquire()
        if not worker.alive():  # died while idle: replace it once
            self._discard(worker)
            worker = self._acquire()
        try:
            if self.config.require_isolation and worker.isolation["warnings"]:
                raise SandboxError("isolation required but incomplete: " + "; ".join(worker.isolation["warnings"]))
            reply = worker.run(job, timeout_s)
        except SandboxError:
            self._discard(worker)
            raise
        self._idle.put(worker)
        return reply, worker.isolation

    def isolation(self) -> dict:
        """The isolation report of a (started) worker: what this machine actually allows."""
        worker = self._acquire()
        self._idle.put(worker)
        return worker.isolation

    def close(self) -> None:
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.close()

    def _acquire(self) -> Worker:
        if os.getpid() != self._pid:
            raise SandboxError("SandboxPool used in a forked child: create a new pool there")
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                slot = self._free_slots.pop() if self._free_slots else None
            if slot is not None:
                return self._start(slot)
            try:  # all busy: wait for one, re-checking for slots freed by a discarded worker
                return self._idle.get(timeout=0.05)
            except queue.Empty:
                continue

    def _start(self, slot: int) -> Worker:
        try:
            worker = Worker(self.config, slot)
        except SandboxError:
            with self._lock:
                self._free_slots.append(slot)
            raise
        with self._lock:
            self._all.add(worker)
        self._warn_once(worker.isolation)
        return worker

    def _discard(self, worker: Worker) -> None:
        worker.close()
        with self._lock:
            self._all.discard(worker)
            self._free_slots.append(worker.slot)

    def _warn_once(self, report: dict) -> None:
        if report["warnings"] and not self._warned:
            self._warned = True
            log.warning("code sandbox runs with WEAKER isolation: %s", "; ".join(report["warnings"]))


_default: SandboxPool | None = None
_default_lock = threading.Lock()


def default_pool() -> SandboxPool:
    global _default
    with _default_lock:
        if _default is None or _default._pid != os.getpid():
            _default = SandboxPool()
        return _default
