"""End to end: `verifiers.math.verify` from every kind of caller, each in its own interpreter.

A piped script (`python - < script`), `python -c`, a script without a main guard (its body must
run exactly once: the workers never import the caller's `__main__`), threads and asyncio.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BODY = textwrap.dedent("""
    import sys
    print("BODY-RAN")
    from verifiers.math import verify
    results = [verify(r"\\boxed{\\frac{1}{2}}", "0.5"), verify(r"\\boxed{3}", "4")]
    print("RESULT", results[0].passed, results[1].passed, results[0].error, results[1].error)
""")
THREADS = BODY + textwrap.dedent("""
    import threading
    out = []
    threads = [threading.Thread(target=lambda i=i: out.append(verify(str(i), str(i)).passed)) for i in range(6)]
    [t.start() for t in threads]; [t.join() for t in threads]
    print("THREADS", all(out), len(out))
""")
ASYNC = BODY + textwrap.dedent("""
    import asyncio
    from verifiers.math import averify
    async def main():
        return await asyncio.gather(*(averify(rf"\\boxed{{{i}}}", str(i)) for i in range(4)))
    print("ASYNC", all(v.passed for v in asyncio.run(main())))
""")


def _run(args, tmp_path, stdin=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *args], input=stdin, capture_output=True, text=True,
                          cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _assert_ok(stdout):
    assert stdout.count("BODY-RAN") == 1, stdout
    assert "RESULT True False None None" in stdout, stdout


def test_script_piped_on_stdin(tmp_path):
    _assert_ok(_run(["-"], tmp_path, stdin=BODY))


def test_python_dash_c(tmp_path):
    _assert_ok(_run(["-c", BODY], tmp_path))


def test_script_without_main_guard_runs_once_with_threads(tmp_path):
    script = tmp_path / "no_guard.py"
    script.write_text(THREADS)
    stdout = _run([str(script)], tmp_path)
    _assert_ok(stdout)
    assert "THREADS True 6" in stdout


def test_asyncio_script(tmp_path):
    script = tmp_path / "async_caller.py"
    script.write_text(ASYNC)
    stdout = _run([str(script)], tmp_path)
    _assert_ok(stdout)
    assert "ASYNC True" in stdout


def test_worker_prints_never_reach_callers_stdout(tmp_path):
    script = tmp_path / "quiet.py"
    script.write_text(BODY + "print('END')\n")
    lines = _run([str(script)], tmp_path).splitlines()
    assert lines[0] == "BODY-RAN" and lines[-1] == "END" and len(lines) == 3
