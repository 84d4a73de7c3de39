"""Adversarial suite for the code sandbox: every program here tries to cheat or to hurt the host.

Each must FAIL its check (never pass, never crash the verifier), and leave the host untouched: no
process of a sandbox uid survives, no file appears outside the sandbox, the verifier keeps working.
Bombs are bounded (RLIMIT_NPROC under a dedicated uid, RLIMIT_AS, output caps, short timeouts).
"""

import os
import socket
import textwrap

import pytest

from verifiers.code import SandboxConfig, SandboxPool, run_python, verify

TESTS = ["assert add(1, 2) == 3", "assert add(20, 22) == 42", "assert add(-5, 5) == 0"]
HONEST = "def add(a, b):\n    return a + b\n"
MARKER = f"/tmp/selfplay-sbx-escape-{os.getpid()}"


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(SandboxConfig(size=2, max_output_bytes=1 << 20, max_procs=16))
    yield p
    p.close()


def check(pool, program, tests=TESTS, timeout=2.0, memory_mb=256):
    v = verify(textwrap.dedent(program), tests, timeout=timeout, memory_mb=memory_mb, pool=pool)
    assert v.error is None, v.error  # a cheating candidate is a wrong answer, not a verifier fault
    assert not v.passed, v.details["tests"]
    return v


def sandbox_processes(pool):
    uids = {str(uid) for uid in pool.uids()}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/status") as f:
                uid_line = next(line for line in f if line.startswith("Uid:"))
        except (OSError, StopIteration):
            continue
        if uid_line.split()[1] in uids:
            found.append(pid)
    return found


@pytest.fixture(autouse=True)
def host_untouched(pool):
    yield
    assert sandbox_processes(pool) == []
    assert not os.path.exists(MARKER)
    assert verify(HONEST, TESTS, pool=pool).passed  # and the verifier still works


def test_honest_program_passes(pool):
    assert verify(HONEST, TESTS, pool=pool).passed


@pytest.mark.parametrize("body", [
    "class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): return False\n"
    "def add(a, b): return A()",
    "class I(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\ndef add(a, b): return I(0)",
    "class S(str):\n    def __eq__(self, o): return True\n    __hash__ = str.__hash__\ndef add(a, b): return S('')",
    "def add(a, b): return float('nan')",
    "def add(a, b): return True",
])
def test_always_equal_objects(pool, body):
    check(pool, body)


def test_walking_stack_frames_and_memory_for_expected_values(pool):
    check(pool, """
        import gc, sys
        def add(a, b):
            for obj in gc.get_objects():                 # look for the expected value anywhere
                if isinstance(obj, dict) and "leaves" in obj:
                    obj["leaves"][:] = ["True"] * len(obj["leaves"])
            f = sys._getframe()
            while f:                                      # forge any harness-looking local
                for k in list(f.f_locals):
                    if k in ("passed", "result", "results", "ok", "status"):
                        f.f_locals[k] = True
                f = f.f_back
            for obj in gc.get_objects():
                if isinstance(obj, str) and "== 3" in obj:
                    return 3
            return 0
    """, tests=["assert add(1, 2) == 987654321"])


@pytest.mark.parametrize("exit_call", [
    "sys.exit(0)", "os._exit(0)", "raise SystemExit(0)", "quit()", "exit()", "os.kill(os.getpid(), 9)",
    "atexit.register(lambda: os.write(3, b'{\"i\": 0, \"v\": 3}\\n')); sys.exit(0)",
])
@pytest.mark.parametrize("where", ["import", "call"])
def test_every_exit_variant(pool, exit_call, where):
    if where == "import":
        program = f"import sys, os, atexit\n{exit_call}\ndef add(a, b): return a + b\n"
    else:
        program = f"import sys, os, atexit\ndef add(a, b):\n    {exit_call}\n"
    check(pool, program)


def test_fake_result_markers_on_every_channel(pool):
    check(pool, r"""
        import os, sys
        for line in ('PASSED', 'all tests passed', '{"i": 0, "v": true}', '{"passed": true}'):
            print(line); print(line, file=sys.stderr)
        for fd in range(3, 64):
            for i in range(3):
                try: os.write(fd, b'{"i": %d, "v": true}\n' % i)
                except OSError: pass
        def add(a, b): return a - b
    """)


def test_forged_duplicate_result_lines_fail_the_check(pool):
    check(pool, r"""
        import os
        os.write(3, b'{"i": 0, "v": 999}\n')
        def add(a, b): return a + b
    """)


def test_patching_builtins_and_the_harness(pool):
    check(pool, """
        import builtins, json, math
        builtins.abs = lambda x: 0
        builtins.isinstance = lambda *a: True
        math.isclose = lambda *a, **k: True
        json.dumps = lambda *a, **k: '{"i": 0, "v": true}'
        def add(a, b): return 100
    """, tests=["assert abs(add(1, 1) - 2.5) < 1e-6", "assert isinstance(add(1, 1), str)",
                "assert math.isclose(add(1, 1), 2.5)"])


def test_reading_and_tampering_with_test_files(pool):
    here = os.path.abspath(__file__)
    r = run_python(f"print(open({here!r}).read()[:50])", pool=pool)
    assert r.exit_code != 0 and "FileNotFoundError" in r.stderr
    repo = os.path.dirname(os.path.dirname(here))
    r = run_python(f"import os; print(os.path.exists({os.path.dirname(here)!r}), os.path.exists({repo!r}) and "
                   f"sorted(os.listdir({repo!r})))", pool=pool)
    assert r.stdout.split()[0] == "False" and "tests" not in r.stdout  # at most the venv is mounted
    before = os.stat(here)
    check(pool, f"""
        def add(a, b):
            try:
                open({here!r}, "a").write("# tampered")
            except OSError:
                pass
            return 0
    """)
    after = os.stat(here)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_infinite_loop_times_out(pool):
    v = check(pool, "def add(a, b):\n    while True: pass\n", timeout=1.0)
    assert v.details["timed_out"]
    check(pool, "while True: pass\n", timeout=1.0)


def test_ignoring_sigalrm_and_sigterm(pool):
    v = check(pool, """
        import signal
        for s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):
            signal.signal(s, signal.SIG_IGN)
        def add(a, b):
            while True: pass
    """, timeout=1.0)
    assert v.details["timed_out"] and v.details["duration_s"] < 3


def test_fork_bomb_is_bounded(pool):
    check(pool, """
        import os
        def add(a, b):
            while True:
                try: os.fork()
                except OSError: pass
    """, timeout=1.0)


def test_memory_bombs_are_bounded(pool):
    check(pool, "x = bytearray(8 * 1024 ** 3)\ndef add(a, b): return a + b\n")
    check(pool, "def add(a, b):\n    s = []\n    while True: s.append(b'x' * 10 ** 7)\n", memory_mb=128)


def test_gigabytes_of_stdout_are_capped(pool):
    r = run_python("import sys\nwhile True: sys.stdout.write('x' * 1000000)\n", timeout=5, pool=pool)
    assert r.output_truncated and len(r.stdout) <= pool.config.max_output_bytes and r.duration_s < 3
    v = verify("while True: print('3' * 100000)", [{"stdin": "", "stdout": "3"}], timeout=5, pool=pool)
    assert not v.passed and v.error is None


def test_no_network(pool):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        r = run_python(textwrap.dedent(f"""
            import socket
            for host in ("127.0.0.1", "1.1.1.1", "8.8.8.8"):
                try:
                    socket.create_connection((host, {port} if host == "127.0.0.1" else 53), timeout=1)
                    print("CONNECTED", host)
                except OSError as e:
                    print("refused", host, e.errno)
        """), pool=pool)
        assert "CONNECTED" not in r.stdout and r.stdout.count("refused") == 3
    finally:
        server.close()


def test_writing_outside_the_work_dir(pool):
    r = run_python(textwrap.dedent(f"""
        import os
        for path in ({MARKER!r}, "/marker", "/etc/marker", "/usr/marker", "../marker", "/tmp/marker",
                     "/dev/shm/marker"):
            try:
                open(path, "w").write("x"); print("WROTE", path)
            except OSError as e:
                print("denied", path)
        open("inside", "w").write("ok"); print("workdir ok", os.getcwd())
    """), pool=pool)
    assert "WROTE" not in r.stdout and "workdir ok" in r.stdout, r


def test_leaving_a_process_behind(pool):
    check(pool, f"""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(3)
                open({MARKER!r}, "w").write("daemon survived")
            os._exit(0)
        def add(a, b): return a - b
    """)
    # the autouse fixture checks that no sandbox-uid process is left and no marker was written


def test_killing_the_parent(pool):
    check(pool, """
        import os, signal
        for pid in (os.getppid(), 1, -1):
            try: os.kill(pid, signal.SIGKILL)
            except OSError: pass
        try: os.killpg(0, signal.SIGKILL)
        except OSError: pass
        def add(a, b): return a + b
    """)
