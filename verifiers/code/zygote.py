"""The warm template process of the code sandbox: fenced in once, it forks one fresh child per job.

What it is for: started by `pool.Worker` as `python -I zygote.py SOCK_FD` (a SOCK_SEQPACKET socket).
At start it enters its own network/PID/mount/IPC/UTS namespaces (becoming PID 1 of the new PID
namespace), pivots into a minimal read-only root, pre-imports the common stdlib, probes the
unprivileged uid and the per-job fences (tmpfs, IPC namespace, seccomp), and reports what isolation
it actually got. Then, per run, it receives small limits plus five memfds made by the parent (job,
stdin, stdout, stderr, results), mounts a fresh tmpfs work dir, forks a child that fences itself in
and runs the candidate (`jobchild.py`); it enforces the wall-clock deadline, kills every process the
job left behind (kill(-1) from PID 1 of the namespace), unmounts the work dir, and replies with
facts only (exit code, timed out, output exceeded, set up ok, duration).

What it does NOT do: judge anything, or read anything a job produced. The program, the test
expressions and the stdin live in memfds it only passes on; the output goes into memfds the parent
reads itself. So its heap, which every later job inherits by fork, never holds candidate output or
expected values. It imports only the stdlib.
"""

from __future__ import annotations

import gc
import json
import os
import select
import socket
import sys
import time

_CODE_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, _CODE_DIR)
import between  # noqa: E402
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
MAX_MESSAGE = 1 << 16
RUN_FDS = ("job", "stdin", "stdout", "stderr", "results")
CGROUP = {"join": [], "kill": None}  # files of this worker's job cgroups, opened by the parent
PIDS: list = []  # the PidScrambler, where we are PID 1 of our own PID namespace
NET: list = []  # the JobNetwork, where the kernel lets us make a network namespace per job


# ----------------------------------------------------------------------------------------- framing
def read_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict | None, list[int]]:
    """One SOCK_SEQPACKET message: a small JSON object, plus the fds the parent attached."""
    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, max_fds) if max_fds else (sock.recv(MAX_MESSAGE), [], 0, 0)
    return (json.loads(data) if data else None), list(fds)


def send_message(sock: socket.socket, message: dict) -> None:
    sock.send(json.dumps(message).encode())


# ----------------------------------------------------------------------------------------- start-up
def set_up(config: dict, keep_fds: tuple[int, int]) -> dict:
    """Enter namespaces, build the private root, probe the uid. Returns the isolation report."""
    warnings: list[str] = []
    entered = _enter_cgroups(config.get("cgroup") or {})  # first: our PID-1 child and every job inherit it
    # No PR_SET_PDEATHSIG against the host: it fires when the host *thread* that started us exits
    # (e.g. a ThreadPoolExecutor worker). We end when the host closes our command pipe, or dies.
    _new_session()
    namespaces = isolation.enter_namespaces(tuple(config["namespaces"]))
    if namespaces.get("pid"):
        _become_pid_one(keep_fds)
    else:  # orphans of a job are re-parented to us, not to the host's init: we kill and reap them
        try:
            isolation.prctl(isolation.PR_SET_CHILD_SUBREAPER, 1)
        except OSError:
            warnings.append("not a child subreaper: a job's orphaned processes are reaped by the host's init")
    filesystem = _private_filesystem(config, namespaces, warnings)
    for name in PRELOAD:
        __import__(name)
    uid = _probe_uid(config.get("uid"), warnings)
    missing = [name for name, ok in namespaces.items() if not ok]
    if missing:
        warnings.append("namespaces unavailable: " + ", ".join(missing))
    if uid is None:
        warnings.append("candidate runs with the verifier's own uid (cannot drop privileges)")
    fence = _probe_fence(config, filesystem, warnings)
    cgroup = _probe_cgroup(config.get("cgroup") or {}, entered, warnings)
    if not namespaces.get("pid") and cgroup["kill"] is None:
        warnings.append("no PID namespace and no cgroup.kill: a job's leftover processes are found by uid only")
    fence["random_pids"] = _probe_pids(namespaces, warnings)
    fence["job_net"] = _probe_job_network(namespaces, warnings)
    return {"namespaces": namespaces, "filesystem": filesystem, "uid": uid, "root": os.geteuid() == 0,
            "rlimits": True, "fence": fence, "cgroup": cgroup, "job_tmp_mb": int(config.get("job_tmp_mb", 64)),
            "job_inodes": int(config.get("job_inodes", 4096)), "warnings": warnings}


def _probe_fence(config: dict, filesystem: str, warnings: list[str]) -> dict:
    """What each job child can add on top: its own tmpfs, its own IPC namespace, a seccomp filter."""
    fence = {"job_tmpfs": False, "ipc": False, "seccomp": False}
    path = _workdir_path("work")
    if filesystem == "private-root":
        try:
            os.makedirs(path, 0o755, exist_ok=True)
            isolation.mount("tmpfs", path, "tmpfs", isolation.MS_NOSUID | isolation.MS_NODEV, "size=1m")
            isolation.umount(path)
            fence["job_tmpfs"] = True
        except OSError:
            pass
    fence["ipc"] = _in_child(lambda: isolation.unshare(isolation.CLONE_NEWIPC))
    fence["seccomp"] = _in_child(isolation.seccomp_self_test)
    if not fence["job_tmpfs"]:
        warnings.append("no per-job tmpfs: work dirs share one tmpfs and are removed file by file")
    if not fence["ipc"]:
        warnings.append("no per-job IPC namespace: SysV IPC objects of one job are visible to the next")
    if not fence["seccomp"]:
        warnings.append("no seccomp filter: kernel keyring syscalls and new user namespaces are not denied")
    return fence


def _probe_pids(namespaces: dict, warnings: list[str]) -> bool:
    """Random pid numbers per job (we must be PID 1 of our own PID namespace to set them)."""
    scrambler = between.PidScrambler() if namespaces.get("pid") else None
    if scrambler is None or scrambler.fd is None:
        why = scrambler.why if scrambler else "no PID namespace"
        warnings.append(f"pid numbers not randomised per job ({why}): a job can see how many pids the previous "
                        "job used")
        return False
    PIDS.append(scrambler)
    return True


def _probe_job_network(namespaces: dict, warnings: list[str]) -> bool:
    """A network namespace per job, and a look inside it after the job for fds left in flight."""
    try:
        if not namespaces.get("net"):
            raise OSError(0, "no network namespace")
        NET.append(between.JobNetwork())
        return True
    except OSError as exc:
        warnings.append(f"no network namespace per job ({exc.strerror or exc}): network counters and abstract "
                        "socket names of one job are visible to the next, and fds a job leaves in flight are "
                        "not detected")
        return False


def _enter_cgroups(given: dict) -> bool:
    """Move this process into the cgroups meant for the whole worker (v1 cpu); False if refused."""
    try:
        for fd in given.get("enter") or []:
            os.write(fd, b"0")
        return True
    except OSError:
        return False
    finally:
        for fd in given.get("enter") or []:
            os.close(fd)


def _probe_cgroup(given: dict, entered: bool, warnings: list[str]) -> dict:
    """Check that a job child can join the cgroups the parent made (a throw-away child joins, exits)."""
    report = dict(given.get("report") or {"cpu": None, "pids": None, "memory": None, "kill": None})
    warnings += given.get("warnings") or []
    join = list(given.get("join") or [])
    if not entered or join and not _in_child(lambda: [os.write(fd, b"0") for fd in join]):
        warnings.append("no per-job CPU bound (cannot join the job cgroup): a job's processes together may "
                        "use several CPUs")
        join, report = [], {"cpu": None, "pids": None, "memory": None, "kill": None}
    CGROUP["join"], CGROUP["kill"] = join, given.get("kill") if report.get("kill") else None
    return report


def _in_child(fn) -> bool:
    child = os.fork()
    if child == 0:
        try:
            fn()
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    return status == 0


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
    remove_tree(workdir)
    return status == 0


def _workdir_path(name: str) -> str:
    parent = WORK_PARENT if os.path.isdir(WORK_PARENT) else "."
    return os.path.join(os.path.abspath(parent), f"sbx-{os.getpid()}-{name}")


def _make_workdir(uid: int | None, name: str) -> str:
    path = _workdir_path(name)
    remove_tree(path)
    os.mkdir(path, 0o700)
    if uid is not None and os.geteuid() == 0:
        os.chown(path, uid, uid)
    return path


# ----------------------------------------------------------------------------------------- one job
def run_once(limits: dict, fds: dict, report: dict) -> dict:
    """Fork one job child on the parent's memfds, wait, kill what is left, drop its work dir.

    Only facts come back (exit code, timed out, ...): the output stays in the memfds, which the
    parent reads itself. This process never reads a byte the candidate wrote."""
    uid = report["uid"]
    workdir = _fresh_workdir(uid, report)
    ready_r, ready_w = os.pipe()
    for scrambler in PIDS:
        scrambler.scramble()
    for net in NET:
        net.enter()
    started, child = time.monotonic(), -1
    try:
        child = os.fork()
    finally:
        for net in NET if child else ():
            net.leave()
    if child == 0:
        os.close(ready_r)
        jobchild.main(limits, workdir, fds, ready_w, uid, report["fence"], CGROUP["join"])  # never returns
    os.close(ready_w)
    waited = _wait(child, started + limits["timeout"], fds, limits["max_output_bytes"])
    _kill_cgroup()
    kill_rest = lambda: isolation.kill_all_but_me(uid, report["namespaces"].get("pid", False))  # noqa: E731
    _kill_quietly(child)
    kill_rest()
    status = _reap(child, kill_rest)
    set_up_ok = os.read(ready_r, 1) == b"1"
    os.close(ready_r)
    _drop_workdir(workdir, report)
    left = [net.leftover_sockets() for net in NET]
    return {**waited, "exit_code": os.waitstatus_to_exitcode(status), "setup_ok": set_up_ok,
            "duration_s": round(time.monotonic() - started, 4), "residue": _residue(left)}


def _residue(left: list[int]) -> str:
    if -1 in left:
        return "a network namespace that could not be inspected"
    return f"{sum(left)} unix socket(s) in flight" if sum(left) else ""


def _fresh_workdir(uid: int | None, report: dict) -> str:
    """A per-job tmpfs (size and inode caps) where we can mount one; else a fresh directory."""
    path = _workdir_path("work")
    if report["fence"]["job_tmpfs"]:
        owner = f",uid={uid},gid={uid}" if uid is not None else ""
        isolation.mount("tmpfs", path, "tmpfs", isolation.MS_NOSUID | isolation.MS_NODEV,
                        f"size={report['job_tmp_mb']}m,nr_inodes={report['job_inodes']},mode=0700{owner}")
        return path
    if os.path.lexists(path):
        remove_tree(path)
    if os.path.lexists(path):  # could not empty it: move it aside, start fresh
        os.rename(path, _workdir_path(f"trash-{time.monotonic_ns()}"))
    return _make_workdir(uid, "work")


def _drop_workdir(path: str, report: dict) -> None:
    """O(1) with a per-job tmpfs (lazy unmount); else an iterative removal that never raises."""
    if report["fence"]["job_tmpfs"]:
        isolation.umount(path)
    else:
        remove_tree(path)


def remove_tree(path: str, max_steps: int = 1_000_000) -> None:
    """Remove a directory tree the candidate built, however deep: never recursive, never raises.

    A subdirectory that is not empty has its entries renamed one level up (dir fds, so no path gets
    long), so a chain of depth d is flattened in d steps."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        top = os.open(path, flags)
    except OSError:
        _quietly(os.unlink, path)
        return
    moved = 0
    try:
        for _ in range(max_steps):
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in os.scandir(top)]
            if not entries:
                break
            for name, is_dir in entries:
                if not is_dir:
                    _quietly(os.unlink, name, dir_fd=top)
                elif not _quietly(os.rmdir, name, dir_fd=top):
                    sub = os.open(name, flags, dir_fd=top)
                    try:
                        for child in [e.name for e in os.scandir(sub)][:1000]:
                            moved += 1
                            _quietly(os.rename, child, f"\x01{moved}", src_dir_fd=sub, dst_dir_fd=top)
                    finally:
                        os.close(sub)
    except BaseException:  # noqa: BLE001 - whatever the candidate built, cleanup must not fail the job
        pass
    finally:
        os.close(top)
    _quietly(os.rmdir, path)


def _quietly(fn, *args, **kwargs) -> bool:
    try:
        fn(*args, **kwargs)
        return True
    except OSError:
        return False


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


def _kill_cgroup() -> None:
    """Kill the job's cgroup as a unit (cgroup v2 cgroup.kill): every process in it, however it forked."""
    if CGROUP["kill"] is not None:
        try:
            os.write(CGROUP["kill"], b"1")
        except OSError:
            pass


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


# ----------------------------------------------------------------------------------------- main loop
def main(argv: list[str]) -> None:
    sock = socket.socket(fileno=int(argv[1]))
    config, _ = read_message(sock)
    if config is None:
        return
    report = set_up(config, (sock.fileno(),))
    jobchild.prepare_in_template(_workdir_path("work"))
    gc.collect()
    gc.freeze()  # children's GC then skips the template's objects: fewer copy-on-write page faults
    send_message(sock, {"ready": True, "isolation": report})
    _prepare_next_job()
    while True:
        try:
            limits, fds = read_message(sock, len(RUN_FDS))
        except (OSError, ValueError) as exc:
            send_message(sock, {"error": f"bad command: {exc}"})
            continue
        if limits is None:
            return
        try:
            if len(fds) != len(RUN_FDS):
                raise ValueError(f"expected {len(RUN_FDS)} fds, got {len(fds)}")
            reply = run_once(limits, dict(zip(RUN_FDS, fds)), report)
        except Exception as exc:  # a zygote fault: the parent reports it as a verifier error
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            for fd in fds:
                os.close(fd)
        del limits, fds
        send_message(sock, reply)
        _prepare_next_job()


def _prepare_next_job() -> None:
    """Work for the next job done while the parent judges this one (a failure is retried in run_once)."""
    for net in NET:
        try:
            net.prepare()
        except OSError:
            pass


if __name__ == "__main__":
    main(sys.argv)
