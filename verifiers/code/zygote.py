"""The warm template process of the code sandbox: fenced in once, it forks one fresh child per job.

What it is for: started by `pool.Worker` as `python -I zygote.py CMD_FD REPLY_FD`. At start it
enters its own network/PID/mount/IPC/UTS namespaces (becoming PID 1 of the new PID namespace),
pivots into a minimal read-only root, pre-imports the common stdlib, probes the unprivileged uid,
and reports what isolation it actually got. Then, per job, it forks a child that sets rlimits, drops
to that uid, and runs the candidate (`jobchild.py`); it enforces the wall-clock deadline, kills every
process the job left behind (kill(-1) from PID 1 of the namespace), removes the work dir, and
replies with the raw stdout / stderr tail / result lines. Messages are 4-byte length + JSON.

What it does NOT do: judge anything. It never receives expected values (those stay in the parent)
and it does not interpret the result lines; it only moves bytes. It imports only the stdlib.
"""

from __future__ import annotations

import gc
import json
import os
import select
import shutil
import struct
import sys
import time

_CODE_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _CODE_DIR)
import isolation  # noqa: E402
import jobchild  # noqa: E402

sys.path.remove(_CODE_DIR)

PRELOAD = ("math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "random",
           "typing", "fractions", "decimal", "statistics", "operator", "copy", "datetime", "hashlib",
           "array", "dataclasses", "enum", "textwrap", "unicodedata", "numbers", "cmath", "traceback",
           "struct", "abc", "contextlib", "queue", "threading", "io", "time")
NOBODY = 65534
ROOT_MOUNTPOINTS = ("/mnt", "/media", "/srv", "/opt", "/tmp")
WORK_PARENT = "/tmp"


# ----------------------------------------------------------------------------------------- framing
def read_message(fd: int) -> dict | None:
    header = _read_exactly(fd, 4)
    if header is None:
        return None
    body = _read_exactly(fd, struct.unpack(">I", header)[0])
    return None if body is None else json.loads(body)


def _read_exactly(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def send_message(fd: int, message: dict) -> None:
    body = json.dumps(message).encode()
    data = struct.pack(">I", len(body)) + body
    while data:
        data = data[os.write(fd, data):]


# ----------------------------------------------------------------------------------------- start-up
def set_up(config: dict, keep_fds: tuple[int, int]) -> dict:
    """Enter namespaces, build the private root, probe the uid. Returns the isolation report."""
    warnings: list[str] = []
    # No PR_SET_PDEATHSIG against the host: it fires when the host *thread* that started us exits
    # (e.g. a ThreadPoolExecutor worker). We end when the host closes our command pipe, or dies.
    _new_session()
    namespaces = isolation.enter_namespaces(tuple(config["namespaces"]))
    if namespaces.get("pid"):
        _become_pid_one(keep_fds)
    filesystem = _private_filesystem(config, namespaces, warnings)
    for name in PRELOAD:
        __import__(name)
    uid = _probe_uid(config.get("uid"), warnings)
    missing = [name for name, ok in namespaces.items() if not ok]
    if missing:
        warnings.append("namespaces unavailable: " + ", ".join(missing))
    if uid is None:
        warnings.append("candidate runs with the verifier's own uid (cannot drop privileges)")
    return {"namespaces": namespaces, "filesystem": filesystem, "uid": uid, "root": os.geteuid() == 0,
            "rlimits": True, "warnings": warnings}


def _new_session() -> None:
    """No controlling terminal for us or any job child (no /dev/tty, no TIOCSTI); once, not per job."""
    try:
        os.setsid()
    except PermissionError:  # already a session leader (Popen start_new_session)
        pass


def _become_pid_one(keep_fds: tuple[int, int]) -> None:
    """After unshare(CLONE_NEWPID) only our children live in the new namespace: fork, and let the
    original process wait as a stub. The child (PID 1) dies with the stub (PDEATHSIG; the stub has one
    thread), and when PID 1 dies the kernel kills everything in the namespace."""
    child = os.fork()
    if child == 0:
        isolation.die_with_parent()
        _new_session()
        return
    for fd in keep_fds:
        os.close(fd)
    _, status = os.waitpid(child, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _private_filesystem(config: dict, namespaces: dict, warnings: list[str]) -> str:
    if not namespaces.get("mount"):
        warnings.append("no mount namespace: the candidate sees the host filesystem (as an unprivileged uid)")
        return "host"
    python_dirs = [sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix]
    python_dirs += [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    try:
        isolation.make_mount_private()
        mountpoint = _free_mountpoint(python_dirs)
        isolation.mount("tmpfs", mountpoint, "tmpfs", isolation.MS_NOSUID | isolation.MS_NODEV, "mode=0755")
        warnings += isolation.build_private_root(mountpoint, python_dirs, config["tmp_size_mb"])
        return "private-root"
    except OSError as exc:
        warnings.append(f"private root failed ({exc}): the candidate sees the host filesystem")
        return "host"


def _free_mountpoint(python_dirs: list[str]) -> str:
    real = [os.path.realpath(p) for p in python_dirs]
    for path in ROOT_MOUNTPOINTS:
        if os.path.isdir(path) and not any(p == path or p.startswith(path + "/") for p in real):
            return path
    raise OSError("no directory to build the private root on")


def _probe_uid(wanted: int | None, warnings: list[str]) -> int | None:
    """The first uid (wanted, then nobody) that a child can switch to and that can use a work dir."""
    for uid in (wanted, NOBODY):
        if uid is not None and _can_run_as(uid):
            if uid != wanted:
                warnings.append(f"uid {wanted} unusable, fell back to {uid} (shared with other users)")
            return uid
    return None


def _can_run_as(uid: int) -> bool:
    workdir = _make_workdir(uid, "probe")
    child = os.fork()
    if child == 0:
        try:
            isolation.drop_privileges(uid)
            with open(os.path.join(workdir, "probe"), "w") as f:
                f.write("ok")
            os._exit(0 if os.getuid() == uid else 1)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    shutil.rmtree(workdir, ignore_errors=True)
    return status == 0


def _workdir_path(name: str) -> str:
    parent = WORK_PARENT if os.path.isdir(WORK_PARENT) else "."
    return os.path.join(os.path.abspath(parent), f"sbx-{os.getpid()}-{name}")


def _make_workdir(uid: int | None, name: str) -> str:
    path = _workdir_path(name)
    shutil.rmtree(path, ignore_errors=True)
    os.mkdir(path, 0o700)
    if uid is not None and os.geteuid() == 0:
        os.chown(path, uid, uid)
    return path


# ----------------------------------------------------------------------------------------- one job
def run_job(job: dict, report: dict) -> dict:
    """Run the program once per stdin case (asserts: once, stdin empty); one reply for all runs."""
    cases = job.get("stdin_cases") or [""]
    runs = [run_once(job, stdin, report) for stdin in cases]
    return {"runs": runs}


def run_once(job: dict, stdin_text: str, report: dict) -> dict:
    uid = report["uid"]
    workdir = _make_workdir(uid, "work")  # same path every job (env set once), fresh and empty each time
    fds = {key: os.memfd_create(key) for key in ("stdin", "stdout", "stderr", "results")}
    os.write(fds["stdin"], stdin_text.encode())
    os.lseek(fds["stdin"], 0, os.SEEK_SET)
    ready_r, ready_w = os.pipe()
    started = time.monotonic()
    child = os.fork()
    if child == 0:
        os.close(ready_r)
        jobchild.main(job, workdir, fds, ready_w, uid)  # never returns
    os.close(ready_w)
    waited = _wait(child, started + job["timeout"], fds, job["max_output_bytes"])
    kill_rest = lambda: isolation.kill_all_but_me(uid, report["namespaces"].get("pid", False))  # noqa: E731
    _kill_quietly(child)
    kill_rest()
    status = _reap(child, kill_rest)
    set_up_ok = os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    shutil.rmtree(workdir, ignore_errors=True)
    result = _collect(fds, job["max_output_bytes"])
    result.update(waited, exit_code=os.waitstatus_to_exitcode(status), setup_ok=set_up_ok,
                  duration_s=round(time.monotonic() - started, 4))
    return result


def _wait(child: int, deadline: float, fds: dict, cap: int) -> dict:
    """Wait for the child until the deadline, watching the output size; kill it on either limit."""
    pidfd = os.pidfd_open(child)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    outcome = {"timed_out": False, "output_exceeded": False}
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                outcome["timed_out"] = True
                break
            if poller.poll(min(remaining, 0.05) * 1000):
                break
            if any(os.fstat(fds[k]).st_size >= cap for k in ("stdout", "stderr", "results")):
                outcome["output_exceeded"] = True
                break
    finally:
        os.close(pidfd)
    return outcome


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        pass


def _reap(child: int, kill_rest) -> int:
    """Collect the job child's status, and every other process left (re-killing until none is)."""
    status = 0
    while True:
        try:
            pid, st = os.waitpid(-1, 0)
        except ChildProcessError:
            return status
        if pid == child:
            status = st
        kill_rest()  # a process forked while we were killing gets caught here


def _collect(fds: dict, cap: int) -> dict:
    sizes = {k: os.fstat(fd).st_size for k, fd in fds.items()}
    out = {
        "stdout": os.pread(fds["stdout"], cap, 0).decode("utf-8", "replace"),
        "stderr_tail": os.pread(fds["stderr"], 4000, max(0, sizes["stderr"] - 4000)).decode("utf-8", "replace"),
        "results": os.pread(fds["results"], cap, 0).decode("utf-8", "replace"),
        "stdout_bytes": sizes["stdout"],
        "stdout_truncated": sizes["stdout"] >= cap,
        "stderr_truncated": sizes["stderr"] >= cap,
        "results_truncated": sizes["results"] >= cap,
    }
    for fd in fds.values():
        os.close(fd)
    return out


# ----------------------------------------------------------------------------------------- main loop
def main(argv: list[str]) -> None:
    cmd_fd, reply_fd = int(argv[1]), int(argv[2])
    config = read_message(cmd_fd)
    if config is None:
        return
    report = set_up(config, (cmd_fd, reply_fd))
    jobchild.prepare_in_template(_workdir_path("work"))
    gc.collect()
    gc.freeze()  # children's GC then skips the template's objects: fewer copy-on-write page faults
    send_message(reply_fd, {"ready": True, "isolation": report})
    while (job := read_message(cmd_fd)) is not None:
        try:
            reply = run_job(job, report)
        except Exception as exc:  # a zygote fault: the parent reports it as a verifier error
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        send_message(reply_fd, reply)


if __name__ == "__main__":
    main(sys.argv)
