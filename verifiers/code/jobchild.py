"""The forked job child: fence itself in, then run the candidate program and the test expressions.

What it is for: `main` is called in a fresh child of the zygote. It reads the program and test
expressions from the parent's job memfd, enters its own IPC namespace, and, still root, wires fds
(0 = stdin memfd, 1/2 = stdout/stderr memfds, 3 = results memfd, nothing else open), sets rlimits, drops to the sandbox uid with no_new_privs, installs the seccomp deny list, resets signals, then reports
"set up" on a pipe that it closes before any candidate code runs. Then it execs the program as
`__main__`; for assert jobs it evaluates each test expression in the program's namespace and writes
one JSON line per expression to fd 3: {"i": k, "v": <plain value>} or {"i": k, "e": "<error>"}.

What it does NOT do: protect fd 3. Candidate code can write anything there. That is by design:
the lines carry values, never verdicts, and expected values never enter this process, so anything
the candidate writes on fd 3 it could equally have returned from its function. The parent decodes,
type-checks and compares. It imports only the stdlib.
"""

from __future__ import annotations

import builtins
import fcntl
import io
import json
import os
import signal
import sys

import isolation
import values

RESULTS_FD = 3
SETUP_FAILED = 111
RESET_SIGNALS = ("SIGXFSZ", "SIGPIPE", "SIGTERM", "SIGINT", "SIGALRM", "SIGCHLD", "SIGHUP", "SIGUSR1", "SIGUSR2")


def prepare_in_template(workdir: str) -> None:
    """Work done once in the zygote instead of in every child: environment and std stream objects.
    (The zygote already runs in its own session, so children have no controlling terminal.)"""
    os.environ.clear()
    os.environ.update(HOME=workdir, TMPDIR=workdir, PATH="/usr/local/bin:/usr/bin:/bin", LANG="C.UTF-8",
                      PYTHONIOENCODING="utf-8", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    _STREAMS.extend(_std_streams())


_STREAMS: list = []


def main(limits: dict, workdir: str, fds: dict, ready_w: int, uid: int | None, fence: dict,
         cgroup_join: list[int] = ()) -> None:
    try:
        for fd in cgroup_join:  # first: all that follows, candidate and descendants, is in the job cgroups
            os.write(fd, b"0")
        job = _read_job(fds["job"])
        ready_fd = _fence_in(limits, workdir, fds, ready_w, uid, fence)
        os.write(ready_fd, b"1")
        os.close(ready_fd)  # closed before candidate code runs: it cannot fake "set up"
    except BaseException:
        os._exit(SETUP_FAILED)
    try:
        code = _run(job)
    except BaseException:
        code = 1
    os._exit(code)


def _read_job(fd: int) -> dict:
    """The program and test expressions, from the parent's memfd (the zygote never read them)."""
    size = os.fstat(fd).st_size
    chunks, offset = [], 0
    while offset < size:
        chunk = os.pread(fd, size - offset, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return json.loads(b"".join(chunks))


def _fence_in(job: dict, workdir: str, fds: dict, ready_w: int, uid: int | None, fence: dict) -> int:
    """Everything between fork and candidate code. Returns the fd of the "set up" pipe."""
    if fence.get("ipc"):
        isolation.unshare(isolation.CLONE_NEWIPC)  # SysV IPC / POSIX mqueues of this job die with it
    sources = [fds["stdin"], fds["stdout"], fds["stderr"], fds["results"], ready_w]
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 200) for fd in sources]  # so no dup2 below clobbers a source
    for target, fd in enumerate(high):
        os.dup2(fd, target)
    ready_fd = len(high) - 1
    os.closerange(ready_fd + 1, 1 << 16)
    os.chdir(workdir)
    isolation.apply_rlimits(cpu_s=int(job["timeout"]) + 1, memory_mb=job["memory_mb"],
                            max_procs=job["max_procs"], max_files=job["max_files"],
                            max_file_bytes=job["max_output_bytes"])
    isolation.drop_privileges(uid)
    if fence.get("seccomp"):
        isolation.install_seccomp()  # no keyrings (they outlive the job), no new namespaces
    for name in RESET_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
    sys.stdin, sys.stdout, sys.stderr = _STREAMS or _std_streams()  # never used in the zygote: empty buffers
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    return ready_fd


def _std_streams() -> list:
    return [io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8"),
            io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8"),
            io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8",
                             errors="backslashreplace", line_buffering=True)]


def _run(job: dict) -> int:
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    if job["kind"] == "asserts":
        return _run_asserts(job, namespace)
    return _run_program(job["program"], namespace)


def _run_program(program: str, namespace: dict) -> int:
    """Run like `python program.py`: exit code from SystemExit, 1 (with traceback) on an exception."""
    code = 0
    try:
        exec(compile(program, "<candidate>", "exec"), namespace)
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    _flush()
    return code


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if type(exc.code) is int:
        return exc.code & 0xFF
    try:
        print(exc.code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def _run_asserts(job: dict, namespace: dict) -> int:
    # Taken (and the tests compiled) before candidate code runs: patching builtins changes nothing.
    write, dumps, to_plain, evaluate = os.write, json.dumps, values.to_plain, builtins.eval
    compiled = [compile(expression, f"<test {i}>", "eval") for i, expression in enumerate(job["leaves"])]
    # trusted jobs only (never run next to a candidate): the candidate's decoded plain values
    namespace.update((name, values.to_python(raw)) for name, raw in (job.get("inputs") or {}).items())
    try:
        exec(compile(job["program"], "<candidate>", "exec"), namespace)
    except BaseException as exc:
        write(RESULTS_FD, (dumps({"program_error": _describe(exc)}) + "\n").encode())
        _flush()
        return 1
    for index, code in enumerate(compiled):
        try:
            line = {"i": index, "v": to_plain(evaluate(code, namespace))}
        except BaseException as exc:
            line = {"i": index, "e": _describe(exc)}
        try:
            text = dumps(line)
        except BaseException as exc:  # e.g. an int too large to print
            text = dumps({"i": index, "e": f"unencodable value: {type(exc).__name__}"})
        write(RESULTS_FD, (text + "\n").encode())
    _flush()
    return 0


def _describe(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except BaseException:
        text = type(exc).__name__
    return text[:300]


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
