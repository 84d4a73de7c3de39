"""Between two jobs of one sandbox worker: nothing of the first may reach the second.

What it is for: the zygote (`zygote.py`) calls these around every job.
- `JobNetwork`: a fresh network namespace per job. The zygote unshares one just before the fork (the
  job child is born in it) and goes back to the worker's own right after; so per-network-namespace
  state (abstract unix socket names, /proc/net/snmp counters such as OutNoRoutes, which a failed
  send bumps, bound ports) is the job's alone. After the job, `leftover_sockets()` looks inside that
  namespace once more: a job can keep kernel objects alive past its end only by holding their fds in
  flight, in an SCM_RIGHTS cycle of unix sockets (memfds, an IPC namespace holding SysV shm, ...);
  any socket still listed in its /proc/net/unix is such a leftover. We then close a socket pair,
  which schedules the kernel's unix garbage collector (it frees unreachable cycles), and the zygote
  reports the residue: the pool replaces the worker (new namespaces, cgroups and uid).
- `PidScrambler.scramble()` (before the fork): writes a random value to the worker PID namespace's
  `ns_last_pid`, so the job's pid numbers (and its children's, and what `/proc/loadavg` shows) are
  random, not "the previous job's last pid + 1": a job that spawns threads to set the next pid number
  publishes nothing.

What it does NOT do: close timing or host-global side channels (CPU caches, page-cache hits, host
load, /proc/stat's fork count, inode numbers of pipes); it imports only the standard library and
`isolation` (it runs in the sandbox's interpreter).
"""

from __future__ import annotations

import os
import secrets
import socket

import isolation

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"
PID_MAX = "/proc/sys/kernel/pid_max"
UNIX_SOCKETS = "/proc/net/unix"
HEADROOM = 4096  # keep clear of pid_max: a job's few dozen tasks must fit above the random start


class PidScrambler:
    """Random pid numbers per job in a PID namespace we are PID 1 of (so may write ns_last_pid)."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.high = 0
        self.why = ""
        try:
            with open(PID_MAX) as f:
                self.high = int(f.read()) - HEADROOM
            if self.high < 2 * HEADROOM:
                raise OSError(0, f"pid_max too small ({self.high + HEADROOM})")
            self.fd = os.open(NS_LAST_PID, os.O_WRONLY | os.O_CLOEXEC)
            self.scramble()
        except (OSError, ValueError) as exc:
            self.close()
            self.why = str(exc)

    def scramble(self) -> None:
        if self.fd is not None:
            value = HEADROOM + secrets.randbelow(self.high - HEADROOM)
            os.pwrite(self.fd, str(value).encode(), 0)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class JobNetwork:
    """A fresh network namespace per job, made by the zygote around the fork (see the module doc)."""

    def __init__(self) -> None:
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.job: int | None = None
        self.next: int | None = None  # made ahead of time, used by the next job only
        self.enter()  # probe: the kernel lets us make one, go back, look inside, and find nothing
        self.leave()
        if self.leftover_sockets() != 0:
            raise OSError(0, "cannot read /proc/net/unix of a fresh network namespace")

    def prepare(self) -> None:
        """Make the next job's namespace ahead of time (the zygote calls this after replying, while the
        parent judges), so the fork's critical path only switches into it."""
        if self.next is None:
            isolation.unshare(isolation.CLONE_NEWNET)
            try:
                self.next = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            finally:
                isolation.setns(self.home, isolation.CLONE_NEWNET)

    def enter(self) -> None:
        """Before the fork: the next child is born in a new network namespace (loopback down)."""
        if self.job is not None:  # the last fork failed before its job ran: drop that namespace
            os.close(self.job)
            self.job = None
        self.prepare()
        isolation.setns(self.next, isolation.CLONE_NEWNET)
        self.job, self.next = self.next, None

    def leave(self) -> None:
        """Right after the fork, in the zygote: back to the worker's own network namespace."""
        isolation.setns(self.home, isolation.CLONE_NEWNET)

    def leftover_sockets(self) -> int:
        """Unix sockets still alive in the last job's namespace once its processes are gone (>0: it
        pinned something; the collector is scheduled). -1 if it cannot be read. Drops the namespace."""
        if self.job is None:
            return 0
        try:
            isolation.setns(self.job, isolation.CLONE_NEWNET)
            try:
                return _count_unix_sockets()
            finally:
                isolation.setns(self.home, isolation.CLONE_NEWNET)
        except OSError:
            return -1
        finally:
            os.close(self.job)
            self.job = None


def _count_unix_sockets() -> int:
    with open(UNIX_SOCKETS, "rb") as f:
        count = sum(1 for _ in f) - 1  # first line is the header
    if count > 0:
        a, b = socket.socketpair()  # closing a unix socket schedules the collector of in-flight cycles
        a.close()
        b.close()
    return count
