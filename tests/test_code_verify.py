"""Contract of verifiers.code: verify() on assert and stdin/stdout tests, run_python, CodeVerifier, degraded mode."""

import subprocess
import sys

import pytest

from verifiers import Verdict
from verifiers.code import CodeVerifier, SandboxConfig, SandboxPool, extract_code, run_python, verify

ADD = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def pool():
    p = SandboxPool(SandboxConfig(size=2))
    yield p
    p.close()


def test_assert_tests_pass_and_fail_with_details(pool):
    v = verify(ADD, ["assert add(1, 2) == 3", "assert add('a', 'b') == 'ab'"], pool=pool)
    assert isinstance(v, Verdict) and v.passed and v.score == 1.0 and v.error is None
    assert v.details["mode"] == "asserts" and len(v.details["tests"]) == 2
    v = verify(ADD, ["assert add(1, 2) == 3", "assert add(1, 2) == 4"], pool=pool)
    assert not v.passed and v.score == 0.5 and v.error is None
    assert [t["status"] for t in v.details["tests"]] == ["pass", "fail"]


def test_strict_types_and_expected_value_expressions(pool):
    assert not verify(ADD, ["assert add(1, 2) == 3.0"], pool=pool).passed
    assert not verify("def f(): return 1", ["assert f() == True"], pool=pool).passed
    assert verify("import math\ndef f(): return math.pi", ["assert f() == math.pi"], pool=pool).passed
    v = verify("def f(): return [0, 1, 4]", ["assert f() == list(i * i for i in range(3))"], pool=pool)
    assert v.passed and v.details["weak_tests"] == []  # name-free comprehension: on the trusted worker (issue 22)
    v = verify("def f(x): return x", ["assert all(f(x) == x for x in range(3))"], pool=pool)
    assert v.passed and v.details["weak_tests"] == [0]  # a candidate call on the test's own variable: weak
    v = verify("def f(x): return x > 1", ["assert f(2)", "assert not f(0)", "assert f(0) is False"], pool=pool)
    assert v.passed


def test_program_errors_and_missing_names_fail(pool):
    v = verify("def add(a, b) return", ["assert add(1, 2) == 3"], pool=pool)
    assert not v.passed and v.error is None and "program failed" in v.reason
    v = verify("def plus(a, b): return a + b", ["assert add(1, 2) == 3"], pool=pool)
    assert not v.passed and "NameError" in v.reason


def test_timeout_is_a_wrong_answer_with_timeout_details(pool):
    v = verify("import time\ndef add(a, b):\n    time.sleep(5)\n", ["assert add(1, 2) == 3"], timeout=0.5, pool=pool)
    assert not v.passed and v.error is None and v.details["timed_out"]
    assert v.details["tests"][0]["status"] == "timeout"


def test_stdio_cases_compare_whole_output(pool):
    prog = "a, b = map(int, input().split())\nprint(a + b)\n"
    v = verify(prog, [{"stdin": "1 2\n", "stdout": "3\n"}, {"stdin": "10 5", "stdout": "15   \n\n"}], pool=pool)
    assert v.passed and v.details["mode"] == "stdio"
    assert not verify(prog + "print('extra')\n", [{"stdin": "1 2\n", "stdout": "3\n"}], pool=pool).passed
    assert not verify("print(3)\nraise SystemExit(1)", [{"stdin": "", "stdout": "3"}], pool=pool).passed
    assert verify("import sys\nprint(3)\nsys.exit(0)", [{"stdin": "", "stdout": "3"}], pool=pool).passed


def test_bad_tests_are_verifier_errors_not_wrong_answers(pool):
    for tests in ([], ["x = 1"], ["assert f() =="], [{"stdin": 1}], ["assert f() == 1", {"stdin": "", "stdout": ""}]):
        v = verify(ADD, tests, pool=pool)
        assert v.error is not None and not v.passed and v.failed_to_check


def test_run_python_for_tool_use(pool):
    r = run_python("import sys\nprint(sys.stdin.read().upper())\nprint('e', file=sys.stderr)\nsys.exit(2)",
                   stdin="hello", pool=pool)
    assert r.stdout == "HELLO\n" and r.stderr == "e\n" and r.exit_code == 2 and not r.timed_out and r.error is None
    r = run_python("input()", pool=pool)  # stdin closed unless given
    assert r.exit_code == 1 and "EOFError" in r.stderr
    assert run_python("while True: pass", timeout=0.5, pool=pool).timed_out


def test_code_verifier_callable_extracts_fenced_code(pool):
    completion = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    assert extract_code(completion).startswith("def add")
    v = CodeVerifier(pool=pool)(completion, tests=["assert add(2, 2) == 4"])
    assert v.passed
    assert CodeVerifier(pool=pool)(completion).failed_to_check


def test_code_verifier_plugs_into_composition_and_the_reward_adapter(pool):
    from verifiers.compose import verify_batch
    from verifiers.reward import as_reward_function
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    items = [{"response": good, "tests": ["assert add(1, 2) == 3"], "reference": "ignored"},
             {"response": "def add(a, b): return 0", "tests": ["assert add(1, 2) == 3"]}]
    assert [v.passed for v in verify_batch(CodeVerifier(pool=pool), items)] == [True, False]
    reward = as_reward_function(CodeVerifier(pool=pool))
    assert reward([good, "no code", "def add(a, b): return a + b"],
                  tests=[["assert add(1, 2) == 3"]] * 2 + [["x = 1"]]) == [1.0, 0.0, None]


def test_isolation_report_on_this_machine(pool):
    report = pool.isolation()
    assert set(report) >= {"namespaces", "filesystem", "uid", "warnings"}
    if report["root"] and all(report["namespaces"].values()):
        assert report["filesystem"] == "private-root" and report["uid"] not in (0, None) and not report["warnings"]


def test_degraded_isolation_is_loud_and_can_be_refused():
    weak = SandboxPool(SandboxConfig(size=1, namespaces=()))
    try:
        v = verify(ADD, ["assert add(1, 2) == 3"], pool=weak)
        assert v.passed and "WEAKER ISOLATION" in v.details["isolation_warning"]
    finally:
        weak.close()
    strict = SandboxPool(SandboxConfig(size=1, namespaces=(), require_isolation=True))
    try:
        v = verify(ADD, ["assert add(1, 2) == 3"], pool=strict)
        assert v.failed_to_check and "isolation required" in v.error
        assert run_python("print(1)", pool=strict).error
    finally:
        strict.close()


def test_concurrent_checks_share_the_pool(pool):
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as ex:
        verdicts = list(ex.map(lambda i: verify(ADD, [f"assert add({i}, 1) == {i + 1}"], pool=pool), range(12)))
    assert all(v.passed for v in verdicts)


def test_a_dead_idle_worker_is_replaced():
    p = SandboxPool(SandboxConfig(size=1))
    try:
        assert verify(ADD, ["assert add(1, 2) == 3"], pool=p).passed
        dead = p._idle.queue[0].proc
        dead.kill()  # the zygote dies while idle: replaced, the check still runs
        dead.wait()
        assert verify(ADD, ["assert add(1, 2) == 3"], pool=p).passed
    finally:
        p.close()


def test_workers_outlive_the_thread_that_started_them():
    import threading
    p = SandboxPool(SandboxConfig(size=1))
    try:
        t = threading.Thread(target=lambda: verify(ADD, ["assert add(1, 2) == 3"], pool=p))
        t.start()
        t.join()  # the thread that spawned the worker is gone (PR_SET_PDEATHSIG would fire here)
        assert verify(ADD, ["assert add(1, 2) == 3"], pool=p).passed
    finally:
        p.close()


def test_package_imports_without_torch_or_other_packages():
    code = ("import sys, verifiers.code; bad = [m for m in ('torch', 'agents', 'trainer', 'selfplay') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
