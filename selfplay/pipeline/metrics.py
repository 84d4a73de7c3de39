"""Evaluation metrics: the unbiased pass@k estimator, maj@k, coverage and yield.

What it is for: numbers computed the same way in every job and report. `pass_at_k` is the
estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed as a stable product.
What it does not do: run models or verifiers; it counts what they produced.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, Sequence


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn (without replacement) from n, c correct, is correct."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per task, got {n}")
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


def mean_pass_at_k(counts: Iterable[tuple[int, int]], k: int) -> float:
    """Mean over tasks of pass@k, from (n, c) per task."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    return sum(values) / len(values) if values else 0.0


def majority_answer(answers: Sequence[str | None]) -> tuple[str | None, float]:
    """Most common non-empty answer (ties: the first seen) and its share of all samples."""
    votes = Counter(a for a in answers if a)
    if not votes:
        return None, 0.0
    best = max(votes.values())
    winner = next(a for a in answers if a and votes[a] == best)
    return winner, best / len(answers)


def maj_at_k(answers: Sequence[str | None], correct: Sequence[bool]) -> bool:
    """Is the majority answer among the first k samples correct? (`answers[i]` judged by `correct[i]`.)"""
    winner, _ = majority_answer(answers)
    if winner is None:
        return False
    return any(ok for a, ok in zip(answers, correct) if a == winner)


def coverage(passed_per_task: Iterable[int]) -> float:
    """Fraction of tasks with at least one passing candidate."""
    values = list(passed_per_task)
    return sum(1 for p in values if p > 0) / len(values) if values else 0.0


def yield_rate(passed: int, total: int) -> float:
    """Passing candidates over candidates generated."""
    return passed / total if total else 0.0


def by_task(items: Iterable[Any]) -> dict[str, list[Any]]:
    """Candidates grouped by task id, in the order they come."""
    groups: dict[str, list[Any]] = {}
    for item in items:
        groups.setdefault(item.task_id, []).append(item)
    return groups


def eval_metrics(items: Sequence[Any], task_ids: Sequence[str], k: int) -> dict[str, Any]:
    """Held-out pass@1 / pass@k (unbiased) and maj@k of verified candidates (`passed`, `answer`, `verifier_error`)."""
    groups = by_task(items)
    counts = [(k, sum(1 for c in groups.get(t, []) if c.passed)) for t in task_ids]
    majority = [maj_at_k([c.answer for c in groups.get(t, [])], [c.passed for c in groups.get(t, [])])
                for t in task_ids]
    return {"eval_pass@1": mean_pass_at_k(counts, 1), "eval_pass@k": mean_pass_at_k(counts, k),
            "eval_maj@k": sum(majority) / len(task_ids) if task_ids else 0.0, "eval_k": k, "eval_tasks": len(task_ids),
            "eval_verifier_errors": sum(1 for c in items if c.verifier_error)}


def generation_stats(candidates: Sequence[Any], verified: Sequence[Any]) -> dict[str, Any]:
    """A round's sampling figures: samples, passed, yield, coverage, completion / verified / prompt tokens."""
    passed = [c for c in verified if c.passed]
    tasks = {c.task_id for c in candidates}
    solved = {c.task_id for c in passed}
    passed_keys = {(c.task_id, c.sample_index) for c in passed}
    tokens = sum(c.usage.completion_tokens for c in candidates)
    verified_tokens = sum(c.usage.completion_tokens for c in candidates if (c.task_id, c.sample_index) in passed_keys)
    return {"samples": len(candidates), "passed": len(passed),
            "yield": len(passed) / len(candidates) if candidates else 0.0,
            "coverage": len(solved) / len(tasks) if tasks else 0.0, "completion_tokens": tokens,
            "verified_tokens": verified_tokens, "prompt_tokens": sum(c.usage.prompt_tokens for c in candidates)}
