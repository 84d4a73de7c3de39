"""A pool of warm sandbox workers (zygotes), shared by `verify` and `run_python`.

What it is for: starting a fenced-in interpreter costs tens of milliseconds; forking a job from a
warm one costs about one. A `SandboxPool` keeps `size` zygotes (`zygote.py`) started, each with its
own unprivileged uid (so RLIMIT_NPROC, which counts per uid, bounds each one separately), hands them
to callers one job at a time (thread-safe), replaces a zygote that died or stopped answering, and
logs (once, loudly) any isolation the kernel refused. `SandboxConfig.require_isolation` turns that
warning into a refusal to run.

Between jobs: a worker whose last job left anything behind (unix sockets kept in flight, reported by
the zygote; tasks or anonymous/shared memory still charged to its cgroups) is replaced before it
runs another job: the replacement has new namespaces, new cgroups and a new uid. A per-job limit the
kernel refuses (e.g. lowering the memory cap below what a used worker's cgroup still holds) is never
skipped: the job is retried once on a freshly started worker, and refused (SandboxError) if that fails
too; the note says what happened.

What it does NOT do: judge results (see `harness.py`) or run anything in this process. A zygote that
misbehaves is killed and restarted; its job is reported as a sandbox error, never as a verdict.
"""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from verifiers.code.cgroups import JobCgroups, LimitNotApplied, cpu_warning

log = logging.getLogger("verifiers.code")
ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote.py")
START_TIMEOUT_S = 30.0
REPLY_GRACE_S = 5.0
MAX_MESSAGE = 1 << 20
STDERR_TAIL = 4000
_cgroup_names = itertools.count()


class SandboxError(RuntimeError):
    """The sandbox itself failed (could not start, died, refused to run): not the candidate's fault."""


@dataclass(frozen=True)
class SandboxConfig:
    """Knobs of the sandbox. Environment: SELFPLAY_SANDBOX_REQUIRE_ISOLATION=1 sets require_isolation."""

    size: int = 0  # warm workers; 0 = min(4, cpu count)
    max_output_bytes: int = 8 << 20  # per stream; also RLIMIT_FSIZE
    max_procs: int = 32  # RLIMIT_NPROC (processes + threads of the sandbox uid)
    max_files: int = 64  # RLIMIT_NOFILE
    tmp_size_mb: int = 256  # tmpfs holding the work dirs (used only where a per-job tmpfs cannot be mounted)
    job_tmp_mb: int = 64  # per-job tmpfs work dir: size and inode caps, dropped in O(1) after the job
    job_inodes: int = 4096
    namespaces: tuple[str, ...] = ("net", "pid", "mount", "ipc", "uts")
    cgroups: bool = True  # per-job cgroup (CPU quota, task cap, kill as a unit) where the host allows one
    job_cpus: float = 1.0  # CPU quota of one job, all its processes together
    require_isolation: bool = field(
        default_factory=lambda: os.environ.get("SELFPLAY_SANDBOX_REQUIRE_ISOLATION", "") not in ("", "0"))
    uid_base: int = 0  # 0 = derived from our pid, so concurrent verifier processes use distinct uids

    def workers(self) -> int:
        return self.size or max(1, min(4, os.cpu_count() or 1))

    def uid_for(self, slot: int, generation: int = 0) -> int:
        """The uid of the worker in `slot`; a replaced worker (generation 1, 2, ...) gets a new one."""
        base = self.uid_base or 1_000_000 + (os.getpid() % 100_000) * 64
        return base + slot + (generation % 300) * (64 if self.uid_base else 6_400_000)


class Worker:
    """One zygote process and its control socket (SOCK_SEQPACKET: one message = one JSON object + fds).

    Per run the PARENT creates the memfds (job, stdin, stdout, stderr, results) and passes them to the
    zygote, which only forks, waits and answers with small facts (exit code, timed out...). The
    candidate's output goes from the job child straight into memfds the parent reads: no byte of it,
    and no expected value, ever enters the template process that forks the next job.
    """

    def __init__(self, config: SandboxConfig, slot: int, generation: int = 0):
        self.config, self.slot, self.generation = config, slot, generation
        self.uid = config.uid_for(slot, generation)
        self.residue = ""  # what the last job left behind: the pool replaces this worker
        self.cgroups = JobCgroups.create(f"selfplay-sbx-{os.getpid()}-{next(_cgroup_names)}", cpus=config.job_cpus,
                                         max_tasks=config.max_procs + 2) if config.cgroups else JobCgroups()
        if not config.cgroups:
            self.cgroups.warnings.append(cpu_warning("cgroups turned off in SandboxConfig"))
        self._sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        fd = child_sock.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-B", ZYGOTE, str(fd)], pass_fds=(fd, *self.cgroups.fds()),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}, close_fds=True,
            start_new_session=True)
        child_sock.close()
        try:
            self._send({"namespaces": list(config.namespaces), "uid": self.uid,
                        "tmp_size_mb": config.tmp_size_mb, "job_tmp_mb": config.job_tmp_mb,
                        "job_inodes": config.job_inodes,
                        "cgroup": {"join": self.cgroups.join_fds, "enter": self.cgroups.enter_fds,
                                   "kill": self.cgroups.kill_fd,
                                   "report": self.cgroups.report, "warnings": self.cgroups.warnings}})
            hello = self._receive(time.monotonic() + START_TIMEOUT_S)
        except SandboxError as exc:
            self.close()
            raise SandboxError(f"sandbox worker failed to start: {exc}: {self._stderr()}") from None
        self.isolation: dict = hello["isolation"]

    def run(self, job: dict, timeout_s: float) -> dict:
        """Run the job once per stdin case; returns {"runs": [...]}. SandboxError if the worker fails."""
        limits = {k: job[k] for k in ("timeout", "memory_mb", "max_procs", "max_files", "max_output_bytes")}
        payload = json.dumps({k: job.get(k) for k in ("kind", "program", "leaves", "inputs")}).encode()
        job_fd = _memfd("job", payload)
        try:
            runs = [self._run_once(limits, job_fd, stdin, timeout_s) for stdin in job.get("stdin_cases") or [""]]
        finally:
            os.close(job_fd)
        self.residue = "; ".join(filter(None, [run.pop("residue", "") for run in runs] + [self.cgroups.residue()]))
        runs[-1]["notes"] = [f"the job left {self.residue}: its worker was replaced"] if self.residue else []
        return {"runs": runs}

    def _run_once(self, limits: dict, job_fd: int, stdin: str, timeout_s: float) -> dict:
        # all of the job's memory together: its processes' (memory_mb), plus its work dir and output
        self.cgroups.set_memory((limits["memory_mb"] + self.config.job_tmp_mb) * (1 << 20) +
                                3 * limits["max_output_bytes"])
        fds = {"stdin": _memfd("stdin", stdin.encode("utf-8", "surrogatepass"))}
        fds.update((k, _memfd(k)) for k in ("stdout", "stderr", "results"))
        try:
            self._send(limits, [job_fd, fds["stdin"], fds["stdout"], fds["stderr"], fds["results"]])
            facts = self._receive(time.monotonic() + timeout_s + REPLY_GRACE_S)
            if "error" in facts:
                raise SandboxError(f"sandbox worker fault: {facts['error']}")
            return {**collect(fds, limits["max_output_bytes"]), **facts}
        finally:
            for fd in fds.values():
                os.close(fd)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self._sock.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()  # the zygote (PID 1 of its namespace) dies with it: PR_SET_PDEATHSIG
        self.proc.wait()
        if self.proc.stderr:
            self.proc.stderr.close()
        self.cgroups.close()

    def _send(self, message: dict, fds: list[int] = ()) -> None:
        try:
            socket.send_fds(self._sock, [json.dumps(message).encode()], list(fds))
        except OSError as exc:
            raise SandboxError(f"worker socket closed ({exc})") from None

    def _receive(self, deadline: float) -> dict:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([self._sock], [], [], remaining)[0]:
            raise SandboxError("worker did not answer in time")
        try:
            data, fds, _, _ = socket.recv_fds(self._sock, MAX_MESSAGE, 1)
        except OSError as exc:
            raise SandboxError(f"worker socket failed ({exc})") from None
        for fd in fds:  # the zygote never sends fds; refuse any
            os.close(fd)
        if not data:
            raise SandboxError("worker exited")
        return json.loads(data)

    def _stderr(self) -> str:
        try:
            self.proc.wait(timeout=1)
            return self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
        except (subprocess.TimeoutExpired, OSError, ValueError):
            return ""


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def collect(fds: dict, cap: int) -> dict:
    """Read a finished run's output from the parent's own memfd copies, as bytes, bounded by `cap`."""
    sizes = {k: os.fstat(fd).st_size for k, fd in fds.items()}
    return {
        "stdout": os.pread(fds["stdout"], cap, 0).decode("utf-8", "replace"),
        "stderr_tail": os.pread(fds["stderr"], STDERR_TAIL, max(0, sizes["stderr"] - STDERR_TAIL)).decode(
            "utf-8", "replace"),
        "results": os.pread(fds["results"], cap, 0).decode("utf-8", "replace"),
        "stdout_bytes": sizes["stdout"],
        "stdout_truncated": sizes["stdout"] >= cap,
        "stderr_truncated": sizes["stderr"] >= cap,
        "results_truncated": sizes["results"] >= cap,
    }


class SandboxPool:
    """Thread-safe pool of warm workers, started lazily, closed at exit."""

    def __init__(self, config: SandboxConfig | None = None, *, _first_slot: int = 0):
        self.config = config or SandboxConfig()
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._free_slots = list(range(_first_slot, _first_slot + self.config.workers()))
        self._lock = threading.Lock()
        self._all: set[Worker] = set()
        self._warned = False
        self._pid = os.getpid()
        self._trusted: SandboxPool | None = None  # expected values and wrappers only; never a candidate
        self._expected_lock = threading.Lock()
        self._uids: set[int] = set()
        atexit.register(self.close)

    def run(self, job: dict, timeout_s: float, *, role: str = "candidate") -> tuple[dict, dict]:
        """Run one job on a warm worker; returns (reply, isolation report).

        role="expected": run it on the pool's dedicated expected-value worker (own uid, own zygote),
        which never runs candidate code, so expected values never share a process with a candidate."""
        if role == "expected":
            return self._run_expected(job, timeout_s)
        worker = self._acquire()
        if not worker.alive():  # died while idle: replace it once
            self._discard(worker)
            worker = self._acquire()
        if self.config.require_isolation and worker.isolation["warnings"]:
            self._idle.put(worker)
            raise SandboxError("isolation required but incomplete: " + "; ".join(worker.isolation["warnings"]))
        notes: list[str] = []
        try:
            reply = worker.run(job, timeout_s)
        except LimitNotApplied as exc:  # never run under a weaker limit: on a fresh worker, or not at all
            notes.append(f"{exc} on a used worker (slot {worker.slot}): the job ran on a fresh worker")
            worker = self._renew(worker)  # SandboxError if it cannot start (its slot is then free)
            try:
                reply = worker.run(job, timeout_s)
            except (LimitNotApplied, SandboxError) as again:
                self._discard(worker)
                raise SandboxError(f"a per-job limit could not be applied, even on a fresh worker: {again}") \
                    from None
        except SandboxError:
            self._discard(worker)
            raise
        self._release(worker)
        reply["runs"][0]["notes"] = notes + reply["runs"][0].get("notes", [])
        return reply, worker.isolation

    def _release(self, worker: Worker) -> None:
        """Back to the idle queue, or replaced if its last job left anything behind."""
        if not worker.residue:
            self._idle.put(worker)
            return
        log.info("sandbox worker %d replaced: its last job left %s", worker.slot, worker.residue)
        try:
            self._idle.put(self._renew(worker))
        except SandboxError:
            pass  # its slot is free again: the next caller starts a worker there

    def _run_expected(self, job: dict, timeout_s: float) -> tuple[dict, dict]:
        """On the trusted workers: a pool of its own (own slots, so own uids), which runs only the tests'
        expected values and wrappers, never a candidate's program."""
        with self._expected_lock:
            if self._trusted is None:
                self._trusted = SandboxPool(self.config, _first_slot=self.config.workers())
            trusted = self._trusted
        return trusted.run(job, timeout_s)

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
        with self._expected_lock:
            trusted, self._trusted = self._trusted, None
        if trusted is not None:
            trusted.close()

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

    def _renew(self, worker: Worker) -> Worker:
        """Close `worker` and start a fresh one in its slot (new namespaces, cgroups and uid)."""
        worker.close()
        with self._lock:
            self._all.discard(worker)
        try:
            fresh = Worker(self.config, worker.slot, worker.generation + 1)
        except SandboxError:
            with self._lock:
                self._free_slots.append(worker.slot)
            raise
        with self._lock:
            self._all.add(fresh)
            self._uids.add(fresh.uid)
        return fresh

    def uids(self) -> set[int]:
        """Every uid this pool's workers have run as (for checks that nothing of theirs is left)."""
        with self._lock:
            uids = set(self._uids) | {self.config.uid_for(slot) for slot in range(2 * self.config.workers())}
        return uids | (self._trusted.uids() if self._trusted is not None else set())

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
