"""Combine verifiers and run them over batches.

What it is for:
  - `call_verifier(v, response, **columns)`: call any verifier with only the inputs it accepts
    (a math verifier takes `reference`, a code verifier `tests`), turning a crash into an error
    Verdict (never a wrong answer, never a crash of the job);
  - gates and sums that are themselves verifiers: `AllOf`, `AnyOf`, `Threshold`, `Weighted`;
  - `verify_batch` (threads) and `averify_batch` (asyncio) with bounded parallelism and an
    optional verdict cache (see `verifiers.cache`).

Error rule (DESIGN.md): an error is "unknown". AllOf fails if any part fails, else errors if any
part errored; AnyOf passes if any part passes, else errors if any errored; Weighted and Threshold
error if any part errored (a partial weighted sum would be a silent 0 for the missing part).

What it does not do: retries, timeouts (each verifier owns its own limits), or persistence.
"""

from __future__ import annotations

import asyncio
import inspect
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Mapping, Sequence

from verifiers.cache import VerdictStore, cache_key, verifier_identity
from verifiers.verdict import Verdict

Verifier = Callable[..., Verdict]


def call_verifier(verifier: Verifier, response: str, **columns: Any) -> Verdict:
    """Call `verifier(response, **accepted columns)`; an exception becomes an error Verdict."""
    try:
        return verifier(response, **accepted_columns(verifier, columns))
    except Exception as exc:  # a broken verifier is data, not a crash of the batch
        return Verdict.broken(f"exception: {type(exc).__name__}", reason=str(exc)[:300])


def accepted_columns(verifier: Verifier, columns: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of `columns` that `verifier` takes as keyword arguments."""
    try:
        parameters = inspect.signature(verifier).parameters.values()
    except (TypeError, ValueError):
        return dict(columns)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return dict(columns)
    names = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return {k: v for k, v in columns.items() if k in names}


class _Composite:
    """Shared plumbing: named parts, identity for caches, calling every part."""

    version = "1"

    def __init__(self, parts: Mapping[str, Verifier] | Sequence[Verifier]):
        self.parts = dict(parts) if isinstance(parts, Mapping) else {_part_name(v, i): v for i, v in enumerate(parts)}
        if not self.parts:
            raise ValueError("a composite verifier needs at least one part")

    def cache_key_parts(self) -> dict[str, Any]:
        return {name: verifier_identity(v) for name, v in self.parts.items()}

    def _run_parts(self, response: str, columns: Mapping[str, Any]) -> dict[str, Verdict]:
        return {name: call_verifier(v, response, **columns) for name, v in self.parts.items()}


class AllOf(_Composite):
    """Passes when every part passes (score: the smallest part score)."""

    name = "all_of"

    def __call__(self, response: str, **columns: Any) -> Verdict:
        verdicts = self._run_parts(response, columns)
        details = _details(verdicts)
        failed = [n for n, v in verdicts.items() if not v.passed and v.error is None]
        if failed:
            return Verdict.wrong(f"failed: {', '.join(failed)}", score=min(v.score for v in verdicts.values()), **details)
        errored = [n for n, v in verdicts.items() if v.error is not None]
        if errored:
            return Verdict.broken("component_error", reason=f"could not check: {', '.join(errored)}", **details)
        return Verdict.ok("all passed", score=min(v.score for v in verdicts.values()), **details)


class AnyOf(_Composite):
    """Passes when at least one part passes (score: the largest passing score)."""

    name = "any_of"

    def __call__(self, response: str, **columns: Any) -> Verdict:
        verdicts = self._run_parts(response, columns)
        details = _details(verdicts)
        passed = [n for n, v in verdicts.items() if v.passed]
        if passed:
            return Verdict.ok(f"passed: {', '.join(passed)}", score=max(verdicts[n].score for n in passed), **details)
        errored = [n for n, v in verdicts.items() if v.error is not None]
        if errored:
            return Verdict.broken("component_error", reason=f"could not check: {', '.join(errored)}", **details)
        return Verdict.wrong("none passed", score=max(v.score for v in verdicts.values()), **details)


class Weighted(_Composite):
    """Score = weighted mean of part scores; passes when score >= pass_threshold."""

    name = "weighted"

    def __init__(self, parts: Mapping[str, tuple[Verifier, float]], *, pass_threshold: float = 1.0):
        if any(weight < 0 for _, weight in parts.values()) or sum(w for _, w in parts.values()) <= 0:
            raise ValueError("weights must be non-negative with a positive sum")
        super().__init__({name: verifier for name, (verifier, _) in parts.items()})
        self.weights = {name: float(weight) for name, (_, weight) in parts.items()}
        self.pass_threshold = pass_threshold

    def cache_key_parts(self) -> dict[str, Any]:
        return {**super().cache_key_parts(), "weights": self.weights, "pass_threshold": self.pass_threshold}

    def __call__(self, response: str, **columns: Any) -> Verdict:
        verdicts = self._run_parts(response, columns)
        details = _details(verdicts)
        errored = [n for n, v in verdicts.items() if v.error is not None]
        if errored:
            return Verdict.broken("component_error", reason=f"could not check: {', '.join(errored)}", **details)
        total = sum(self.weights.values())
        score = sum(self.weights[n] * v.score for n, v in verdicts.items()) / total
        score = min(1.0, max(0.0, score))
        verdict = Verdict.ok if score >= self.pass_threshold - 1e-12 else Verdict.wrong
        return verdict(f"weighted score {score:.3f} (pass at {self.pass_threshold:g})", score=score, **details)


class Threshold(_Composite):
    """Passes when one verifier's score reaches `min_score` (e.g. a judge's 0.7)."""

    name = "threshold"

    def __init__(self, verifier: Verifier, min_score: float):
        super().__init__({"inner": verifier})
        self.min_score = min_score

    def cache_key_parts(self) -> dict[str, Any]:
        return {**super().cache_key_parts(), "min_score": self.min_score}

    def __call__(self, response: str, **columns: Any) -> Verdict:
        inner = self._run_parts(response, columns)["inner"]
        if inner.error is not None:
            return inner
        verdict = Verdict.ok if inner.score >= self.min_score else Verdict.wrong
        return verdict(f"score {inner.score:.3f} vs threshold {self.min_score:g}", score=inner.score,
                       inner=inner.model_dump())


def verify_batch(verifier: Verifier, items: Iterable[Mapping[str, Any]], *, max_concurrency: int = 8,
                 cache: VerdictStore | None = None) -> list[Verdict]:
    """Check many items ({"response": ..., other columns}) in up to `max_concurrency` threads; keeps order."""
    items = list(items)
    with ThreadPoolExecutor(max_workers=max(1, max_concurrency)) as pool:
        return list(pool.map(lambda item: _check_one(verifier, item, cache), items))


async def averify_batch(verifier: Verifier, items: Iterable[Mapping[str, Any]], *, max_concurrency: int = 8,
                        cache: VerdictStore | None = None) -> list[Verdict]:
    """`verify_batch` for asyncio: at most `max_concurrency` checks in flight, each in a thread."""
    gate = asyncio.Semaphore(max(1, max_concurrency))

    async def one(item: Mapping[str, Any]) -> Verdict:
        async with gate:
            return await asyncio.to_thread(_check_one, verifier, item, cache)

    return list(await asyncio.gather(*(one(item) for item in items)))


def _check_one(verifier: Verifier, item: Mapping[str, Any], cache: VerdictStore | None) -> Verdict:
    columns = {k: v for k, v in item.items() if k != "response"}
    response = item.get("response", "")
    key = cache_key(verifier, response, accepted_columns(verifier, columns)) if cache is not None else None
    if key is not None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    verdict = call_verifier(verifier, response, **columns)
    if key is not None:
        cache.put(key, verdict)
    return verdict


def _part_name(verifier: Verifier, index: int) -> str:
    return f"{getattr(verifier, 'name', None) or getattr(verifier, '__name__', 'part')}_{index}"


def _details(verdicts: Mapping[str, Verdict]) -> dict[str, Any]:
    return {"parts": {name: v.model_dump() for name, v in verdicts.items()}}
