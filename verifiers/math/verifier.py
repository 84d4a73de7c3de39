"""The public math verifier: `verify(response, reference, *, timeout) -> Verdict`.

What it is for: the callable the rest of the engine (and TRL, via `verifiers.reward`) uses. Each
check runs `check.check` in a persistent worker process under a hard time limit (see `worker`);
the result becomes a `Verdict`: passed / wrong with a reason, or `error="timeout"` /
`"bad_reference"` / `"worker_crashed"` / `"internal"` when the verifier itself could not decide.
`averify` is the same for asyncio callers (the blocking wait runs in a thread).

What it does not do: cache verdicts (see `verifiers.cache` / `verifiers.compose`), or retry a
timed-out check: a timeout is an answer ("unknown"), and retrying it would only stall the job.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from typing import Any

from verifiers.math.numeric import DEFAULT_REL_TOL
from verifiers.math.worker import HardTimeout, WorkerCrashed, WorkerPool
from verifiers.verdict import Verdict

VERSION = "1.1"  # 1.1: committed-answer rules, finish_reason, `expression = value`
DEFAULT_TIMEOUT_S = 5.0
_CHECK_TARGET = "verifiers.math.check:check"
_WARMUP_TARGET = "verifiers.math.check:warm_up"
_shared_pool: WorkerPool | None = None
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_shared_pool_lock = threading.Lock()


def default_pool() -> WorkerPool:
    """The process-wide worker pool (created on first use, up to min(4, CPUs) workers)."""
    global _shared_pool
    with _shared_pool_lock:
        if _shared_pool is None:
            _shared_pool = WorkerPool(_CHECK_TARGET, warmup=_WARMUP_TARGET,
                                      max_workers=min(4, os.cpu_count() or 1))
        return _shared_pool


class MathVerifier:
    """A configured math verifier; calling it checks one response against one reference."""

    name = "math"
    version = VERSION

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT_S, rel_tol: float = DEFAULT_REL_TOL,
                 pool: WorkerPool | None = None):
        self.timeout = timeout
        self.rel_tol = rel_tol
        self._pool = pool

    def __call__(self, response: str, reference: str, *, timeout: float | None = None,
                 finish_reason: str | None = None) -> Verdict:
        """Check one response; `finish_reason` is the completion's ("stop", "length", ...; None: unknown).
        A truncated completion ("length") passes only with an answer committed before the cut."""
        limit = self.timeout if timeout is None else timeout
        pool = self._pool or default_pool()
        try:
            result = pool.call(_as_text(response), _as_text(reference), self.rel_tol, _finish_reason(finish_reason),
                               timeout=limit)
        except HardTimeout:
            return Verdict.broken("timeout", reason=f"check ran past {limit:g}s and was killed")
        except WorkerCrashed as exc:
            return Verdict.broken("worker_crashed", reason=str(exc))
        except RuntimeError as exc:
            return Verdict.broken("internal", reason=str(exc)[:300])
        return _to_verdict(result)

    async def averify(self, response: str, reference: str, *, timeout: float | None = None,
                      finish_reason: str | None = None) -> Verdict:
        """Async variant: the blocking wait on the worker runs in a thread."""
        return await asyncio.to_thread(self, response, reference, timeout=timeout, finish_reason=finish_reason)

    def cache_key_parts(self) -> dict[str, Any]:
        """What, beyond name and version, changes this verifier's verdicts (for verdict caches)."""
        return {"rel_tol": self.rel_tol}


_default_verifier = MathVerifier()


def verify(response: str, reference: str, *, timeout: float = DEFAULT_TIMEOUT_S,
           finish_reason: str | None = None) -> Verdict:
    """Check a model response against a reference answer (the issue's contract). Pass the completion's
    `finish_reason` when you have it: a truncated one ("length") never passes on an uncommitted value."""
    return _default_verifier(response, reference, timeout=timeout, finish_reason=finish_reason)


async def averify(response: str, reference: str, *, timeout: float = DEFAULT_TIMEOUT_S,
                  finish_reason: str | None = None) -> Verdict:
    """`verify` for asyncio code."""
    return await _default_verifier.averify(response, reference, timeout=timeout, finish_reason=finish_reason)


def _as_text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _finish_reason(value: Any) -> str | None:
    """None (unknown) or the finish reason as a short string (an enum's value, bytes, ...)."""
    if value is None:
        return None
    value = getattr(value, "value", value)
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))[:40]


def _to_verdict(result: dict[str, Any]) -> Verdict:
    reason, details = printable(result["reason"]), printable(result["details"])
    if result["error"]:
        return Verdict.broken(result["error"], reason=reason, **details)
    if result["passed"]:
        return Verdict.ok(reason, **details)
    return Verdict.wrong(reason, **details)


def printable(value: Any) -> Any:
    """Verdict text is valid, printable UTF-8: lone surrogates and control characters from the
    response (`"\\ud800"`, `"\\x1b[31m"`) are escaped, so `model_dump_json()` never raises."""
    if isinstance(value, str):
        text = value.encode("utf-8", "backslashreplace").decode("utf-8")
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    if isinstance(value, dict):
        return {printable(k): printable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [printable(v) for v in value]
    return value
