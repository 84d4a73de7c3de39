"""Second-wave adversarial tests of the code sandbox (issue 14): cross-candidate leaks, expected values
evaluated away from candidates, deep trees, IPC / keyring residue, surrogates, output normalisation."""

import textwrap

import pytest

from verifiers.code import SandboxConfig, SandboxPool, verify
from verifiers.code.harness import normalise_output

SECRET_TESTS = ["assert secret(7) == 'tok-31337-7'", "assert secret(8) == 'tok-31337-8'"]
HONEST = "def secret(n):\n    print('tok-31337-%d' % n)\n    return 'tok-31337-%d' % n\n"
STEALER = textwrap.dedent("""
    import gc, sys
    def _find(n):
        want = '-%d' % n
        for obj in gc.get_objects():
            items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
            for v in items:
                if isinstance(v, str) and v.startswith('tok-') and v.endswith(want):
                    return v
        for mod in list(sys.modules.values()):
            for v in list(vars(mod).values()):
                if isinstance(v, str) and v.startswith('tok-'):
                    return v
        return None
    def secret(n):
        return _find(n)
""")


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(SandboxConfig(size=1, max_output_bytes=1 << 20))
    yield p
    p.close()


def test_honest_sibling_then_stealer_through_verify_batch(pool):
    from verifiers.code import CodeVerifier
    from verifiers.compose import verify_batch
    items = []
    for k in range(6):  # one worker: every stealer forks from the zygote right after an honest sibling
        items.append({"response": HONEST if k % 2 == 0 else STEALER, "tests": SECRET_TESTS})
    verdicts = verify_batch(CodeVerifier(pool=pool, timeout=3.0), items)
    assert [v.passed for v in verdicts] == [True, False] * 3
    assert all(v.error is None for v in verdicts)


def test_name_free_expected_side_is_not_evaluated_next_to_the_candidate(pool):
    forger = textwrap.dedent("""
        import os, json
        for i in range(4):
            os.write(3, (json.dumps({"i": i, "v": "x"}) + "\\n").encode())
        os._exit(0)
        def f(): return "x"
    """)
    tests = ["assert f() == ''.join(['a', 'b'])", "assert f() == 'abc'[::-1]", "assert f() == 'XY'.lower()",
             "assert f() == str(float('inf'))"]
    v = verify(forger, tests, timeout=2.0, pool=pool)
    assert v.error is None and not v.passed
    ok = "def f():\n    return 'ab'\n"
    assert verify(ok, tests[:1], pool=pool).passed
    assert verify("import math\ndef f():\n    return 120\n", ["assert f() == math.factorial(5)"], pool=pool).passed


def test_deep_directory_tree_is_a_failed_test_not_a_verifier_error(pool):
    deep = textwrap.dedent("""
        import os
        for i in range(3000):
            os.mkdir('d')
            os.chdir('d')
        def secret(n): return None
    """)
    for _ in range(2):
        v = verify(deep, SECRET_TESTS, timeout=5.0, pool=pool)
        assert v.error is None and not v.passed
    assert verify(HONEST, SECRET_TESTS, pool=pool).passed


def test_ipc_and_keyring_leave_no_residue(pool):
    if not pool.isolation()["fence"]["ipc"]:
        pytest.skip("no per-job IPC namespace on this machine")
    maker = textwrap.dedent("""
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        print(libc.shmget(0x5eed, 4096, 0o1666) >= 0)
        print(libc.syscall(248, b"user", b"selfplay-key", b"v", 1, -3) >= 0)  # add_key (x86_64)
    """)
    seer = "import ctypes\nprint(ctypes.CDLL(None).shmget(0x5eed, 0, 0o666) >= 0)\n"
    verify(maker, [{"stdin": "", "stdout": "True\nFalse\n"}], pool=pool)
    v = verify(seer, [{"stdin": "", "stdout": "False\n"}], pool=pool)
    assert v.passed, v.details["tests"]


def test_surrogates_and_control_chars_in_verdict_text(pool):
    program = "import os\nos.write(3, b'{\"i\": 0, \"e\": \"\\\\ud800\\\\u001b[2J\"}\\n')\nos._exit(0)\n"
    v = verify(program, ["assert f(1) == 2"], pool=pool)
    assert v.error is None and not v.passed
    v.model_dump_json().encode("utf-8")
    assert "\x1b" not in v.model_dump_json() and "\\ud800" in v.reason


def test_output_normalisation_is_exactly_crlf_trailing_blanks_and_lines():
    assert normalise_output("1 \t\r\n2\n\n\n") == normalise_output("1\n2")
    assert normalise_output("a\rb") != normalise_output("a\nb")
    assert normalise_output("a\u00a0") != normalise_output("a")
    assert normalise_output(" a") != normalise_output("a")


def test_memory_of_a_job_does_not_depend_on_previous_output(pool):
    probe = "print(open('/proc/self/status').read().split('VmSize:')[1].split()[0])\n"
    from verifiers.code import run_python
    before = run_python(probe, pool=pool).stdout
    run_python("import sys\nsys.stdout.write('x' * 900_000)\n", pool=pool)
    assert run_python(probe, pool=pool).stdout == before


def test_hash_flooding_reply_costs_milliseconds(pool):
    import time
    flood = textwrap.dedent("""
        import os, json
        items = [k * (2 ** 61 - 1) for k in range(1, 25001)]  # all hash to 0
        os.write(3, (json.dumps({"i": 0, "v": {"S": items}}) + "\\n").encode())
        os.write(3, (json.dumps({"i": 1, "v": {"l": items}}) + "\\n").encode())
        os._exit(0)
    """)
    start = time.perf_counter()
    v = verify(flood, ["assert f() == {1, 2}", "assert set(g()) == {1}"], timeout=3.0, pool=pool)
    assert time.perf_counter() - start < 1.5
    assert v.error is None and not v.passed
    assert sum(r["passed"] for r in v.details["tests"]) == 0
