"""Third-wave adversarial tests of the code sandbox (issue 22): one job's state never reaches the next job of
the same worker. Colluding siblings through `verify_batch` (a correct leaker publishes its values through
abstract unix socket names kept alive in an SCM_RIGHTS cycle, or through the pid numbers it leaves; a wrong
stealer reads them), jobs that pin memory past their end (memfds, an IPC namespace holding SysV shm) followed
by honest jobs that need it, a lowered memory cap after such a job, and a cap the kernel refuses."""

import os
import textwrap

import pytest

from verifiers.code import CodeVerifier, SandboxConfig, SandboxPool, run_python, verify
from verifiers.code.cgroups import LimitNotApplied
from verifiers.compose import verify_batch

SECRET_TESTS = ["assert secret(7) == 'tok-31337-7'", "assert secret(8) == 'tok-31337-8'"]
ABSTRACT_LEAKER = textwrap.dedent("""
    import socket
    def secret(n):
        return 'tok-31337-%d' % n
    def _publish():
        keep = []
        for n in (7, 8):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            s.bind('\\0sp-ans=' + secret(n))
            keep.append(s)
        a, b = socket.socketpair()  # the cycle keeps every socket alive after the job ends
        socket.send_fds(b, [b'x'], [a.fileno(), b.fileno()] + [s.fileno() for s in keep])
    _publish()
""")
ABSTRACT_STEALER = textwrap.dedent("""
    import socket
    def secret(n):
        try:
            for line in open('/proc/net/unix'):
                name = line.split()[-1] if len(line.split()) > 7 else ''
                if name.startswith('@sp-ans=') and name.endswith('-%d' % n):
                    return name[len('@sp-ans='):]
        except OSError:
            pass
        for guess in ('tok-31337-%d' % n,):  # or probe a name: EADDRINUSE says it exists
            s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            try:
                s.bind('\\0sp-ans=' + guess)
            except OSError:
                return guess
        return None
""")
PID_LEAKER = textwrap.dedent("""
    import threading
    def code(n):
        return n * 31
    def _publish(value):  # spend pids until the last one ends in `value`
        while True:
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()
            if t.native_id % 1000 == value:
                return
    _publish(code(7))
""")
PID_STEALER = "import os\ndef code(n):\n    return (os.getpid() - 1) % 1000\n"
MEMFD_PINNER = textwrap.dedent("""
    import os, socket
    a, b = socket.socketpair()
    for i in range(60):  # 60 x 8 MiB memfds in flight (the per-uid in-flight cap is RLIMIT_NOFILE, 64)
        fd = os.memfd_create('pin')
        os.write(fd, b'x' * (8 << 20))
        socket.send_fds(b, [b'x'], [fd])
        os.close(fd)
    socket.send_fds(b, [b'x'], [a.fileno(), b.fileno()])
    def work(n):
        return n
""")
SHM_PINNER = textwrap.dedent("""
    import ctypes, os, socket
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    shm = libc.shmget(0, 440 << 20, 0o1600)
    addr = libc.shmat(shm, None, 0)
    ctypes.memset(ctypes.c_void_p(addr), 1, 440 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    ns = os.open('/proc/self/ns/ipc', os.O_RDONLY)  # keeps the job's IPC namespace, and its shm, alive
    a, b = socket.socketpair()
    socket.send_fds(b, [b'x'], [a.fileno(), b.fileno(), ns])
    def work(n):
        return n
""")
HUNGRY = textwrap.dedent("""
    def work(n):
        block = bytearray(200 << 20)
        for i in range(0, len(block), 4096):
            block[i] = 1
        return n
""")
WORK_TESTS = ["assert work(3) == 3"]
FORKED_HOGS = textwrap.dedent("""
    import os, time
    def work(n):
        kids = []
        for _ in range(6):  # each under its own RLIMIT_AS, together far over the job's cap
            pid = os.fork()
            if pid == 0:
                block = bytearray(48 << 20)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                time.sleep(1)
                os._exit(0)
            kids.append(pid)
        return sum(os.waitpid(k, 0)[1] == 9 for k in kids)
""")


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(SandboxConfig(size=1))  # one worker: every job forks right after its sibling
    yield p
    p.close()


def sandbox_processes(pool):
    uids = {str(uid) for uid in pool.uids()}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                uid = next(line for line in f if line.startswith("Uid:")).split()[1]
        except (OSError, StopIteration):
            continue
        if uid in uids:
            found.append(pid)
    return found


def batch(pool, programs, tests, **kwargs):
    items = [{"response": program, "tests": tests} for program in programs]
    return verify_batch(CodeVerifier(pool=pool, **kwargs), items, max_concurrency=1)


def test_abstract_socket_names_in_an_scm_rights_cycle_reach_no_sibling(pool):
    verdicts = batch(pool, [ABSTRACT_LEAKER, ABSTRACT_STEALER] * 3, SECRET_TESTS)
    assert [v.passed for v in verdicts] == [True, False] * 3, [v.reason for v in verdicts]
    assert all(v.error is None for v in verdicts)
    if pool.isolation()["fence"].get("job_net"):
        assert "left" in " ".join(verdicts[0].details["sandbox_notes"])  # and the leaker's worker was replaced


NET_LEAKER = textwrap.dedent("""
    import socket
    def code(n):
        return n * 31
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for _ in range(code(7)):  # each failed send bumps Ip OutNoRoutes in /proc/net/snmp: no socket survives
        try:
            s.sendto(b'x', ('10.1.2.3', 9))
        except OSError:
            pass
""")
NET_STEALER = textwrap.dedent("""
    def code(n):
        lines = [line.split() for line in open('/proc/net/snmp') if line.startswith('Ip:')]
        return int(dict(zip(lines[0][1:], lines[1][1:]))['OutNoRoutes']) % 1000
""")


def test_network_counters_carry_nothing_to_the_next_job(pool):
    verdicts = batch(pool, [NET_LEAKER, NET_STEALER] * 2, ["assert code(7) == 217"])
    assert [v.passed for v in verdicts] == [True, False] * 2, [v.reason for v in verdicts]


def test_pid_numbers_carry_nothing_to_the_next_job(pool):
    if not pool.isolation()["namespaces"].get("pid"):
        pytest.skip("no own PID namespace here: " + "; ".join(pool.isolation()["warnings"]))
    verdicts = batch(pool, [PID_LEAKER, PID_STEALER] * 3, ["assert code(7) == 217"])
    assert [v.passed for v in verdicts] == [True, False] * 3, [v.reason for v in verdicts]


@pytest.mark.parametrize("pinner", [MEMFD_PINNER, SHM_PINNER], ids=["memfds", "sysv-shm"])
def test_memory_pinned_past_a_job_does_not_starve_honest_siblings(pool, pinner):
    if not pool.isolation()["cgroup"]["memory"]:
        pytest.skip("no memory cgroup on this host")
    verdicts = batch(pool, [pinner, HUNGRY, HUNGRY, HUNGRY], WORK_TESTS, memory_mb=512, timeout=20.0)
    assert [v.passed for v in verdicts[1:]] == [True] * 3, [v.reason for v in verdicts]
    assert sandbox_processes(pool) == []


def test_a_lowered_memory_cap_after_a_pinning_job_still_holds(pool):
    if not pool.isolation()["cgroup"]["memory"]:
        pytest.skip("no memory cgroup on this host")
    verify(SHM_PINNER, WORK_TESTS, memory_mb=512, pool=pool)
    v = verify(FORKED_HOGS, ["assert work(0) >= 2"], memory_mb=128, timeout=30.0, pool=pool)
    assert v.passed, (v.reason, v.error)  # cap 128 + 64 + 24 MiB: 6 x 48 MiB children cannot all fit


def test_a_cap_the_kernel_refuses_is_never_skipped(pool, monkeypatch):
    if not pool.isolation()["cgroup"]["memory"]:
        pytest.skip("no memory cgroup on this host")
    from verifiers.code.cgroups import JobCgroups
    real = JobCgroups.set_memory
    refusals = {"left": 1}

    def refuse_once(self, limit_bytes):
        if refusals["left"]:
            refusals["left"] -= 1
            raise LimitNotApplied("cannot set memory.limit_in_bytes to 152 MiB (Device or resource busy)")
        return real(self, limit_bytes)

    monkeypatch.setattr(JobCgroups, "set_memory", refuse_once)
    v = verify("def work(n):\n    return n\n", WORK_TESTS, memory_mb=64, pool=pool)
    assert v.passed and "ran on a fresh worker" in " ".join(v.details["sandbox_notes"])
    refusals["left"] = 2  # refused on the used worker and on the fresh one: the job does not run
    v = verify("def work(n):\n    return n\n", WORK_TESTS, memory_mb=64, pool=pool)
    assert v.error and "could not be applied" in v.error and "Device or resource busy" in v.error
    monkeypatch.undo()
    assert verify("def work(n):\n    return n\n", WORK_TESTS, pool=pool).passed


def test_honest_jobs_keep_their_worker(pool):
    before = {w.uid for w in pool._all}
    for _ in range(3):
        assert run_python("import socket\na, b = socket.socketpair()\nprint(1)\n", pool=pool).stdout == "1\n"
    assert {w.uid for w in pool._all} == before  # nothing left behind: no replacement


def test_a_job_cannot_see_the_zygote_or_other_processes(pool):
    """The zygote's CPU time and context switches grow with what the previous job made it do (reap
    processes, watch output): a job sees only its own uid's processes in /proc (hidepid)."""
    probe = "import os\nprint(os.path.exists('/proc/1/status'), all(int(p) != 1 for p in os.listdir('/proc') " \
            "if p.isdigit()))\n"
    assert run_python(probe, pool=pool).stdout == "False True\n"
