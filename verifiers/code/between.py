"""Between two jobs of one sandbox worker: nothing of the first may reach the second.

What it is for: the zygote (`zygote.py`) calls these around every job.
- `PidScrambler.scramble()` (before the fork): writes a random value to the worker PID namespace's
  `ns_last_pid`, so the job's pid numbers (and its children's, and what `/proc/loadavg` shows) are
  random, not "the previous job's last pid + 1": a job that spawns threads to set the next pid number
  publishes nothing.
- `leftover_sockets()` (after the job's processes are dead and reaped): the unix sockets still alive
  in the worker's network namespace. A job can keep kernel objects alive past its end only by holding
  their fds in flight, in an SCM_RIGHTS cycle of unix sockets (abstract names readable in
  /proc/net/unix, memfds, an IPC namespace holding SysV shm, ...). Those sockets live in the worker's
  network namespace, which holds no socket of ours, so any line of /proc/net/unix is something a job
  left behind. We then close a socket pair, which schedules the kernel's unix garbage collector (it
  frees unreachable cycles), and the zygote reports the residue: the pool replaces the worker (new
  namespaces, new cgroups, new uid) before another job runs there.

What it does NOT do: close timing or global-counter side channels (CPU caches, page cache hits, host
load, inode numbers of pipes); it imports only the standard library (it runs in the sandbox's
interpreter).
"""

from __future__ import annotations

import os
import secrets
import socket

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


def leftover_sockets() -> int:
    """Unix sockets alive in this network namespace; >0 means a job left something (see module doc).
    Schedules the kernel's unix garbage collector when there are any. -1 if it cannot be read."""
    try:
        with open(UNIX_SOCKETS, "rb") as f:
            count = sum(1 for _ in f) - 1  # first line is the header
    except OSError:
        return -1
    if count > 0:
        a, b = socket.socketpair()  # closing a unix socket schedules the collector of in-flight cycles
        a.close()
        b.close()
    return count
