"""Per-job CPU bound of the code sandbox (issue 14): a candidate's spinning children share one CPU's worth,
cannot time out an honest sibling's check, and do not outlive their job. Where the host gives no cgroup,
the Verdict says so and the children are still killed at the job's end."""

import os
import textwrap
import time

import pytest

from verifiers.code import CodeVerifier, SandboxConfig, SandboxPool, run_python
from verifiers.compose import verify_batch

SPINNER = textwrap.dedent("""
    import os
    for _ in range(4):
        if os.fork() == 0:
            while True:
                pass
    def work(n):
        while True:
            pass
""")
HONEST = "def work(n):\n    total = 0\n    for i in range(n):\n        total += i\n    return total\n"
TESTS = ["assert work(300000) == 44999850000"]


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


def spinner_next_to_honest(pool):
    items = [{"response": SPINNER, "tests": TESTS}, {"response": HONEST, "tests": TESTS}] * 2
    start = time.monotonic()
    verdicts = verify_batch(CodeVerifier(pool=pool, timeout=4.0, memory_mb=256), items, max_concurrency=2)
    return verdicts, time.monotonic() - start


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(SandboxConfig(size=2, max_procs=16))
    yield p
    p.close()


def test_spinning_children_do_not_time_out_an_honest_sibling(pool):
    verdicts, elapsed = spinner_next_to_honest(pool)
    assert [v.passed for v in verdicts] == [False, True, False, True], [v.reason for v in verdicts]
    assert all(v.error is None for v in verdicts)
    assert all(v.details["timed_out"] for v in verdicts[::2])
    assert sandbox_processes(pool) == []  # the spinners' children are gone with their job
    report = verdicts[1].details["isolation"]
    if report["cgroup"]["cpu"]:
        assert "no per-job CPU bound" not in verdicts[1].details.get("isolation_warning", "")
    else:  # this host gives no cgroup: the missing protection is named in every Verdict
        assert all("no per-job CPU bound" in v.details["isolation_warning"] for v in verdicts)


def test_each_job_runs_inside_its_workers_quota(pool):
    report = pool.isolation()
    if not report["cgroup"]["cpu"]:
        pytest.skip("no cgroup CPU controller on this host: " + "; ".join(report["warnings"]))
    workers = list(pool._all)
    names = {os.path.basename(d) for w in workers for d in w.cgroups.dirs}
    inside = run_python("print(open('/proc/self/cgroup').read())", pool=pool).stdout
    assert any(name in inside for name in names), inside
    for worker in workers:
        for path in worker.cgroups.dirs:
            if os.path.exists(os.path.join(path, "cpu.cfs_quota_us")):
                assert open(os.path.join(path, "cpu.cfs_quota_us")).read().strip() == "100000"
            if os.path.exists(os.path.join(path, "cpu.max")):
                assert open(os.path.join(path, "cpu.max")).read().split()[0] == "100000"


def test_cgroups_are_removed_with_the_pool():
    p = SandboxPool(SandboxConfig(size=1))
    run_python("print(1)", pool=p)
    dirs = [d for w in p._all for d in w.cgroups.dirs]
    p.close()
    assert not any(os.path.exists(d) for d in dirs)


@pytest.mark.parametrize("namespaces", [("net", "pid", "mount", "ipc", "uts"), ()])
def test_without_cgroups_the_verdict_says_so_and_children_still_die(namespaces):
    """Killed by the PID namespace's kill(-1), or, without one, by uid."""
    p = SandboxPool(SandboxConfig(size=2, max_procs=16, cgroups=False, namespaces=namespaces))
    try:
        verdicts, _ = spinner_next_to_honest(p)
        assert [v.passed for v in verdicts] == [False, True, False, True], [v.reason for v in verdicts]
        assert all("no per-job CPU bound" in v.details["isolation_warning"] for v in verdicts)
        assert sandbox_processes(p) == []
    finally:
        p.close()


def test_memory_of_all_of_a_jobs_processes_together_is_capped():
    p = SandboxPool(SandboxConfig(size=1, max_output_bytes=1 << 20, job_tmp_mb=8))  # cap: 128 + 8 + 3 x 1 MB
    try:
        if not p.isolation()["cgroup"]["memory"]:
            pytest.skip("no cgroup memory controller on this host")
        hog = textwrap.dedent("""
            import os, time
            kids = []
            for _ in range(4):  # each under its own RLIMIT_AS (128 MB), together 256 MB
                pid = os.fork()
                if pid == 0:
                    block = bytearray(64 << 20)
                    for i in range(0, len(block), 4096):
                        block[i] = 1
                    time.sleep(1)  # hold it while the others try
                    os._exit(0)
                kids.append(pid)
            print(sum(os.waitpid(k, 0)[1] == 9 for k in kids))
        """)
        result = run_python(hog, pool=p, timeout=40.0, memory_mb=128)  # slow when niced on a busy host
        assert result.exit_code == 0 and int(result.stdout) >= 2, (result.stdout, result.stderr)
        assert run_python("print(len(bytearray(64 << 20)))", pool=p, memory_mb=128).stdout == f"{64 << 20}\n"
    finally:
        p.close()
