"""Public entry points of the code verifier: `verify` (a Verdict), `run_python` (raw run for tool use).

What it is for: `verify(program, tests)` runs the candidate in the sandbox against assert tests or
{"stdin", "stdout"} cases and returns a `Verdict` (passed = every test passed, score = fraction passed,
details = per-test records, timeouts, stderr tail, isolation report). A broken test or a sandbox
failure is a `Verdict.broken` (error set: neither right nor wrong). `CodeVerifier` wraps `verify` as a
plain callable over an LLM completion (code taken from its last fenced block), the shape composition
and the TRL reward adapter expect. `run_python` gives the tool-use workflow "run this, show me the output".

What it does NOT do: extract tests from prose, retry flaky programs, or cache verdicts (composition does).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from verifiers.code.asserts import BadTest
from verifiers.code.harness import check_asserts, check_stdio, make_job, run_job
from verifiers.code.pool import SandboxError, SandboxPool, default_pool
from verifiers.verdict import Verdict

STDERR_TAIL = 2000
# Linear: the header's blanks can be matched one way only (a language word, if any, splits them), so a
# fence followed by 10^5 spaces costs one pass, not a quadratic backtrack (issue 22: was 19 s).
_FENCE = re.compile(r"```[ \t]*(?:(?:python3?|py)[ \t]*)?\n(.*?)```", re.DOTALL | re.IGNORECASE)


def verify(program: str, tests: list, *, timeout: float = 10.0, memory_mb: int = 1024,
           pool: SandboxPool | None = None) -> Verdict:
    """Check `program` against assert strings or {"stdin", "stdout"} cases, in the sandbox."""
    pool = pool or default_pool()
    if not isinstance(program, str) or not isinstance(tests, list) or not tests:
        return Verdict.broken("bad test: need a program string and a non-empty list of tests")
    try:
        if all(isinstance(t, dict) for t in tests):
            outcome = check_stdio(pool, program, tests, timeout, memory_mb)
        elif all(isinstance(t, str) for t in tests):
            outcome = check_asserts(pool, program, tests, timeout, memory_mb)
        else:
            raise BadTest("tests must be all assert strings or all {stdin, stdout} dicts")
    except BadTest as exc:
        return Verdict.broken(f"bad test: {exc}")
    except SandboxError as exc:
        return Verdict.broken(f"sandbox error: {exc}")
    return _verdict(outcome)


def _verdict(outcome: dict) -> Verdict:
    records = outcome["tests"]
    passed = sum(r["passed"] for r in records)
    runs = outcome.get("runs") or [outcome["run"]]
    details = {
        "mode": outcome["mode"],
        "tests": records,
        "passed_tests": passed,
        "total_tests": len(records),
        "timed_out": any(r["timed_out"] for r in runs),
        "exit_codes": [r["exit_code"] for r in runs],
        "stderr_tail": runs[-1]["stderr_tail"][-STDERR_TAIL:],
        "weak_tests": outcome["weak_tests"],
        "isolation": outcome["isolation"],
        "duration_s": round(sum(r["duration_s"] for r in runs), 4),
    }
    notes = [note for run in runs for note in run.get("notes", [])]
    if notes:
        details["sandbox_notes"] = notes
    if outcome["isolation"]["warnings"]:
        details["isolation_warning"] = "WEAKER ISOLATION: " + "; ".join(outcome["isolation"]["warnings"])
    details = clean_text(details)
    score = passed / len(records)
    if passed == len(records):
        return Verdict.ok("all tests passed", score=1.0, **details)
    first = next(r for r in records if not r["passed"])
    reason = f"{len(records) - passed}/{len(records)} tests failed; test {first['index']}: " \
             f"{first['status']} {first['detail']}"[:300]
    return Verdict.wrong(clean_text(reason), score=score, **details)


def clean_text(value: Any, limit: int = 4000) -> Any:
    """Every string made valid printable UTF-8 (lone surrogates and control chars escaped, length capped)."""
    if type(value) is str:
        text = value[:limit]
        if not text.isprintable():
            text = "".join(c if c.isprintable() or c in "\n\t" else ascii(c)[1:-1] for c in text)
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    if type(value) is dict:
        return {clean_text(k): clean_text(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return [clean_text(v) for v in value]
    return value


def extract_code(completion: str) -> str:
    """The last ```python fenced block of an LLM completion, or the completion itself if it has none."""
    blocks = _FENCE.findall(completion or "")
    return blocks[-1] if blocks else (completion or "")


@dataclass
class CodeVerifier:
    """`CodeVerifier()(completion, tests=[...])` -> Verdict: a plain-callable verifier for composition/TRL.

    It takes exactly one column, `tests` (so `compose.call_verifier` passes only that, and the verdict
    cache keys on it); `version` and `cache_key_parts` identify its settings for `verifiers.cache`.
    """

    timeout: float = 10.0
    memory_mb: int = 1024
    pool: SandboxPool | None = None
    name: str = "code"
    version: str = "1"

    def cache_key_parts(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "memory_mb": self.memory_mb}

    def __call__(self, completion: str, tests: list | None = None) -> Verdict:
        if not tests:
            return Verdict.broken("bad test: no tests given for this task")
        return verify(extract_code(completion), list(tests), timeout=self.timeout, memory_mb=self.memory_mb,
                      pool=self.pool)


@dataclass
class RunResult:
    """Outcome of one sandboxed run. `error` is set only when the sandbox itself failed."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    timed_out: bool = False
    output_truncated: bool = False
    duration_s: float = 0.0
    isolation: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and not self.timed_out and self.exit_code == 0

    def to_dict(self) -> dict:
        return asdict(self)


def run_python(code: str, stdin: str | None = None, *, timeout: float = 10.0, memory_mb: int = 1024,
               pool: SandboxPool | None = None) -> RunResult:
    """Run `code` as a script in the sandbox (stdin closed unless given); never raises for sandbox faults."""
    pool = pool or default_pool()
    job = make_job(pool, "stdio", code, timeout, memory_mb, stdin_cases=[stdin or ""])
    try:
        runs, isolation = run_job(pool, job, timeout)
    except SandboxError as exc:
        return RunResult(error=str(exc))
    run = runs[0]
    return RunResult(stdout=run["stdout"], stderr=run["stderr_tail"], exit_code=run["exit_code"],
                     timed_out=run["timed_out"],
                     output_truncated=run["stdout_truncated"] or run["stderr_truncated"] or run["output_exceeded"],
                     duration_s=run["duration_s"], isolation=isolation)
