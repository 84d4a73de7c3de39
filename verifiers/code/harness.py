"""Trusted-parent harness: build sandbox jobs from tests, and turn the sandbox's raw replies into results.

What it is for: `check_asserts` and `check_stdio` return one record per test (`passed`, `status`,
`detail`) plus run facts (timeouts, stderr tail). Assert tests are split by `asserts.compile_assert`;
the sandbox only ever receives the program and the leaf expressions, and its reply lines are decoded
strictly (`values.from_plain`): a malformed, duplicated or out-of-range line fails the check, it
never passes anything. Stdin/stdout tests compare the WHOLE output (CRLF -> LF, trailing whitespace
of each line and trailing blank lines ignored) and require exit code 0, no timeout and no truncation.

What it does NOT do: build Verdicts (see `verify.py`) or talk to processes (see `pool.py`).
Expected values are read here and never put into a job.
"""

from __future__ import annotations

from typing import Any

from verifiers.code.asserts import BadTest, CheckFailed, SplitTest, compile_assert, judge
from verifiers.code.pool import SandboxError, SandboxPool
from verifiers.code.trusted import pure_values, wrapper_values
from verifiers.code.values import Budget, OverCap, ProtocolError, check_reply, describe, from_plain, loads


PROGRAM_ERROR = -1  # key of the program's own error in parse_results' dict (test indices are >= 0)


def make_job(pool: SandboxPool, kind: str, program: str, timeout: float, memory_mb: int, **extra: Any) -> dict:
    cfg = pool.config
    return {"kind": kind, "program": program, "timeout": float(timeout), "memory_mb": int(memory_mb),
            "max_procs": cfg.max_procs, "max_files": cfg.max_files, "max_output_bytes": cfg.max_output_bytes,
            **extra}


def run_job(pool: SandboxPool, job: dict, timeout_s: float, role: str = "candidate") -> tuple[list[dict], dict]:
    reply, isolation = pool.run(job, timeout_s, role=role)
    runs = reply["runs"]
    if not all(run["setup_ok"] for run in runs):
        raise SandboxError("sandbox could not set up the job (rlimits / uid drop failed)")
    return runs, isolation


# ----------------------------------------------------------------------------------------- asserts
def check_asserts(pool: SandboxPool, program: str, tests: list[str], timeout: float, memory_mb: int) -> dict:
    splits = [compile_assert(t) for t in tests]
    expected = pure_values(pool, splits, memory_mb)
    leaves: list[str] = []
    where: list[list[tuple[str, Any]]] = []  # per test, per leaf: ("sandbox", i), ("value", v) or ("trusted", None)
    for split in splits:
        slots = []
        for leaf, kind in zip(split.leaves, split.kinds):
            if kind == "pure":
                slots.append(("value", expected[leaf]))
            elif kind == "candidate":
                slots.append(("sandbox", len(leaves)))
                leaves.append(leaf)
            else:
                slots.append(("trusted", None))
        where.append(slots)
    runs, isolation = run_job(pool, make_job(pool, "asserts", program, timeout, memory_mb, leaves=leaves), timeout)
    run = runs[0]
    results, problem = parse_results(run["results"], len(leaves), run["results_truncated"])
    wrapped = {} if problem else wrapper_values(pool, splits, where, results, memory_mb)
    records = [_judge_one(i, split, slots, results, problem, run, wrapped) for i, (split, slots) in
               enumerate(zip(splits, where))]
    return {"mode": "asserts", "tests": records, "run": run, "isolation": isolation,
            "weak_tests": [i for i, s in enumerate(splits) if s.weak]}


def parse_results(text: str, count: int, truncated: bool) -> tuple[dict[int, tuple[str, Any]], str | None]:
    """Decode the sandbox's result lines. Any irregularity is returned as `problem` (fails every test)."""
    results: dict[int, tuple[str, Any]] = {}
    problem = "result channel truncated" if truncated else None
    try:
        check_reply(text)  # element caps, from character counts: a hostile reply costs milliseconds
    except ProtocolError as exc:
        return results, f"reply refused: {exc}"
    budget, program_error_seen = Budget(), False
    for line in _lines(text):  # lazily: a reply refused at its second line costs two lines, not all
        try:
            record = loads(line)
        except ProtocolError:
            return results, "malformed result line"
        if type(record) is not dict:
            return results, "malformed result line"
        if set(record) == {"program_error"}:
            if program_error_seen:  # one is all the sandbox ever writes; more only cost the parent time
                return results, "forged or duplicated result line"
            program_error_seen = True
            if type(record["program_error"]) is str:  # kept (short) for every missing test's reason
                results[PROGRAM_ERROR] = ("program_error", record["program_error"][:200])
            continue
        index = record.get("i")
        if type(index) is not int or not 0 <= index < count or index in results or len(record) != 2:
            return results, "forged or duplicated result line"
        try:
            if "v" in record:
                results[index] = ("value", from_plain(record["v"], 0, budget))
            elif "e" in record and type(record["e"]) is str:
                results[index] = ("error", record["e"][:300])
            else:
                return results, "malformed result line"
        except OverCap as exc:
            return results, f"reply refused: {exc}"
        except ProtocolError as exc:
            results[index] = ("error", f"not plain data: {exc}")
    return results, problem


def _lines(text: str):
    """The reply's lines ("\n"-separated, as the sandbox writes them), one at a time."""
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        if end < 0:
            yield text[start:]
            return
        yield text[start:end]
        start = end + 1


def _judge_one(index: int, split: SplitTest, slots: list, results: dict, problem: str | None, run: dict,
               wrapped: dict) -> dict:
    record = {"index": index, "test": split.source[:200], "passed": False, "weak": split.weak}
    if problem:
        return {**record, "status": "error", "detail": problem}
    values = []
    for kind, ref in slots:  # candidate values first: a missing one is why a wrapper around it is missing
        if kind == "value" or kind == "trusted":
            values.append(ref)
            continue
        if ref not in results:
            status = "timeout" if run["timed_out"] else "missing"
            return {**record, "status": status, "detail": _why_missing(run, results)}
        outcome, value = results[ref]
        if outcome == "error":
            return {**record, "status": "error", "detail": value}
        values.append(value)
    for leaf, (kind, _) in enumerate(slots):
        if kind == "trusted":
            outcome, value = wrapped.get((index, leaf), ("error", "trusted evaluation gave no value"))
            if outcome == "error":
                return {**record, "status": "fail", "detail": f"{split.leaves[leaf][:80]}: {value}"}
            values[leaf] = value
    try:
        judge(split, values)
    except CheckFailed as exc:
        return {**record, "status": "fail", "detail": f"{exc}; got {describe(values)}"}
    return {**record, "passed": True, "status": "pass", "detail": ""}


def _why_missing(run: dict, results: dict) -> str:
    """Constant time: the program error (if any) was kept by parse_results, never re-parsed per test."""
    if run["timed_out"]:
        return "timed out before this test ran"
    if run["output_exceeded"]:
        return "output limit exceeded"
    if PROGRAM_ERROR in results:
        return "program failed before the tests ran: " + results[PROGRAM_ERROR][1]
    return f"sandbox exited (code {run['exit_code']}) before this test ran"


# ----------------------------------------------------------------------------------------- stdin/stdout
def check_stdio(pool: SandboxPool, program: str, cases: list[dict], timeout: float, memory_mb: int) -> dict:
    for case in cases:
        if type(case) is not dict or type(case.get("stdin")) is not str or type(case.get("stdout")) is not str:
            raise BadTest('stdin/stdout tests must be {"stdin": str, "stdout": str}')
    job = make_job(pool, "stdio", program, timeout, memory_mb, stdin_cases=[c["stdin"] for c in cases])
    runs, isolation = run_job(pool, job, timeout * len(cases))
    records = [_compare_output(i, case, run) for i, (case, run) in enumerate(zip(cases, runs))]
    return {"mode": "stdio", "tests": records, "runs": runs, "isolation": isolation, "weak_tests": []}


def normalise_output(text: str) -> str:
    """CRLF -> LF, trailing spaces/tabs of each line, trailing blank lines: nothing else."""
    lines = text.replace("\r\n", "\n").split("\n")
    return "\n".join(line.rstrip(" \t") for line in lines).rstrip("\n")


def _compare_output(index: int, case: dict, run: dict) -> dict:
    record = {"index": index, "passed": False, "duration_s": run["duration_s"]}
    if run["timed_out"]:
        return {**record, "status": "timeout", "detail": "timed out"}
    if run["output_exceeded"] or run["stdout_truncated"]:
        return {**record, "status": "error", "detail": "output limit exceeded"}
    if run["exit_code"] != 0:
        return {**record, "status": "error", "detail": f"exit code {run['exit_code']}"}
    if normalise_output(run["stdout"]) != normalise_output(case["stdout"]):
        got = normalise_output(run["stdout"])
        return {**record, "status": "fail", "detail": f"output differs; got {got[:120]!r}"}
    return {**record, "passed": True, "status": "pass", "detail": ""}
