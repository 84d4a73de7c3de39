"""Evaluation metrics: the unbiased pass@k estimator, maj@k, coverage and yield.

What it is for: numbers computed the same way in every job and report. `pass_at_k` is the
estimator of Chen et al. (2021): 1 - C(n-c, k) / C(n, k), computed as a stable product.
What it does not do: run models or verifiers; it counts what they produced.
"""

from __future__ import annotations

import math
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


# --- what K buys: pass@k, maj@k and best-of-k for k = 1, 2, 4, ..., K, with the price of k samples -------------
MAJ_CLASSES = 64     # wrong answers kept as their own vote when estimating maj@k; rarer ones count as singletons
MAJ_DRAWS = 400      # Monte-Carlo subsets per (task, k) where exact enumeration is too long
MAJ_EXACT_LIMIT = 20_000  # compositions enumerated exactly before falling back to Monte-Carlo


def pass_at_k_fast(n: int, c: int, k: int) -> float:
    """`pass_at_k` for any n (1M samples): the shorter of its two exact products, log-gamma when both are long."""
    if not 0 <= c <= n or k < 1 or k > n:
        return pass_at_k(n, c, k)  # raises the same errors
    if n - c < k:
        return 1.0
    if min(c, k) <= 100_000:
        if c <= k:
            return pass_at_k(n, c, k)
        product = 1.0
        for j in range(k):  # C(n-c, k) / C(n, k) = prod_j (n-c-j) / (n-j)
            product *= (n - c - j) / (n - j)
        return 1.0 - product
    log_ratio = (math.lgamma(n - c + 1) - math.lgamma(n - c - k + 1) - math.lgamma(n + 1) + math.lgamma(n - k + 1))
    return 1.0 - math.exp(log_ratio)


def k_points(n: int) -> list[int]:
    """1, 2, 4, ... up to n, and n itself."""
    points, k = [], 1
    while k <= n:
        points.append(k)
        k *= 2
    if n >= 1 and points[-1] != n:
        points.append(n)
    return points


def maj_at_k_of_classes(classes: Sequence[tuple[int, bool]], n: int, k: int, seed: int = 0) -> float:
    """Expected majority-vote correctness of k samples drawn without replacement from n, whose answers fall into
    `classes` ((count, correct) per distinct answer; the n - sum(counts) others gave no answer and do not vote).
    A tie between answers credits the share of correct ones among them. Exact (enumerating compositions) when
    that is short, else an unbiased Monte-Carlo estimate over `MAJ_DRAWS` subsets (seeded: repeatable); wrong
    answers beyond the `MAJ_CLASSES` most frequent vote as singletons."""
    if k < 1 or k > n:
        raise ValueError(f"maj@{k} needs 1 <= k <= n = {n}")
    if sum(count for count, _ in classes) > n:
        raise ValueError("the classes hold more samples than n")
    if k == 1:  # the one sample's own answer wins
        return sum(count for count, ok in classes if ok) / n
    correct = [count for count, ok in classes if ok and count]
    wrong = sorted((count for count, ok in classes if not ok and count), reverse=True)
    tail = sum(wrong[MAJ_CLASSES:])
    wrong = wrong[:MAJ_CLASSES]
    abstain = n - sum(correct) - sum(wrong) - tail
    if not correct:
        return 0.0
    if tail == 0:
        exact = _maj_exact(correct, wrong, abstain, n, k)
        if exact is not None:
            return exact
    return _maj_monte_carlo(correct, wrong, tail, abstain, k, seed)


def _maj_exact(correct: list[int], wrong: list[int], abstain: int, n: int, k: int) -> float | None:
    """Sum over every way of drawing k (counts per class), each weighted by its multivariate hypergeometric
    probability (in log space: n may be 1M); None when there are more than MAJ_EXACT_LIMIT ways."""
    sizes = [*correct, *wrong, abstain]
    if _ways_exceed(sizes, k, MAJ_EXACT_LIMIT):  # counted first: enumerating the first LIMIT ways would be wasted
        return None
    voting = len(correct) + len(wrong)
    log_all = _log_comb(n, k)
    total, seen = 0.0, 0
    x = [0] * len(sizes)

    def walk(i: int, left: int, log_weight: float) -> bool:
        nonlocal total, seen
        if i == len(sizes) - 1:
            if left > sizes[i]:
                return True
            seen += 1
            if seen > MAJ_EXACT_LIMIT:
                return False
            x[i] = left
            top = max(x[:voting])
            if top:
                winners = [j for j in range(voting) if x[j] == top]
                chance = math.exp(log_weight + _log_comb(sizes[i], left) - log_all)
                total += chance * sum(1 for j in winners if j < len(correct)) / len(winners)
            return True
        rest = sum(sizes[i + 1:])
        for take in range(max(0, left - rest), min(sizes[i], left) + 1):  # the later classes can hold the rest
            x[i] = take
            if not walk(i + 1, left - take, log_weight + _log_comb(sizes[i], take)):
                return False
        return True

    if not walk(0, k, 0.0):
        return None
    return min(1.0, total)


def _ways_exceed(sizes: list[int], k: int, limit: int) -> bool:
    """Whether there are more than `limit` ways to draw k samples from classes of these sizes (counts per class,
    at most sizes[i] from class i): the ways `_maj_exact` enumerates, counted without enumerating them (a
    bounded-composition count in numpy, capped at limit + 1; by symmetry k and sum(sizes) - k have as many)."""
    k = min(k, sum(sizes) - k)
    if k < 0:
        return False
    if math.comb(k + len(sizes) - 1, len(sizes) - 1) <= limit:  # even without the bounds there are few enough
        return False
    import numpy as np

    ways = np.zeros(k + 1, dtype=np.int64)  # ways[j]: ways to draw j from the classes seen so far (capped)
    ways[0] = 1
    for size in sizes:
        if size == 0:
            continue
        within = np.cumsum(ways)  # within[j] - within[j - size - 1]: draw 0..size from this class
        if size < k:
            within[size + 1:] = within[size + 1:] - within[:k - size]
        ways = np.minimum(within, limit + 1)
    return int(ways[k]) > limit


def _log_comb(a: int, b: int) -> float:
    return math.lgamma(a + 1) - math.lgamma(b + 1) - math.lgamma(a - b + 1)


def _maj_monte_carlo(correct: list[int], wrong: list[int], tail: int, abstain: int, k: int, seed: int) -> float:
    import numpy as np

    colors = np.array([*correct, *wrong, tail, abstain], dtype=np.int64)
    draws = np.random.default_rng(seed).multivariate_hypergeometric(colors, k, size=MAJ_DRAWS)
    votes = draws[:, :len(correct) + len(wrong)]
    tail_drawn = draws[:, -2]
    top = np.maximum(votes.max(axis=1), np.minimum(tail_drawn, 1))
    at_top = votes == top[:, None]
    winners = at_top.sum(axis=1) + np.where(top == 1, tail_drawn, 0)
    correct_winners = at_top[:, :len(correct)].sum(axis=1)
    credit = np.where(top > 0, correct_winners / np.maximum(winners, 1), 0.0)
    return float(credit.mean())


def best_of_k(scored: Sequence[tuple[float, int, int]], n: int, k: int) -> float:
    """Expected correctness of the best-scored of k samples drawn without replacement from n (exact):
    `scored` is (score, samples, of which correct) per distinct score; samples of equal score are picked at random,
    unscored samples rank last and count as wrong."""
    if k < 1 or k > n:
        raise ValueError(f"best-of-{k} needs 1 <= k <= n = {n}")
    above, value = 0, 0.0
    for _, size, good in sorted(scored, key=lambda s: -s[0]):
        if not size:
            continue
        # P(the best of k lies in this group) = P(no sample from above nor this group) complement, by difference
        p_top_here = _none_of(n, above, k) - _none_of(n, above + size, k)
        value += p_top_here * good / size
        above += size
    return value


def _none_of(n: int, m: int, k: int) -> float:
    """P(k samples drawn without replacement from n avoid m given ones) = C(n - m, k) / C(n, k)."""
    return 1.0 - pass_at_k_fast(n, m, k) if m else 1.0


PER_TASK_LIMIT = 1000  # tasks listed one by one in a curve (the overall points cover every task)


def k_curve(rows: Iterable[tuple[str, str | None, bool, float, int]], samples: dict[str, tuple[int, float]],
            *, seed: int = 0) -> dict[str, Any]:
    """What K bought: pass@k, maj@k (and best-of-k where scores vary) for k = 1, 2, 4, ..., K, per task and overall,
    each point with the $ of k samples per task and $ per point (percentage point) of pass@k.

    `rows`: (task, extracted answer or None, passed, score, count) per verdict class (`RunStore.answer_classes`);
    `samples`: per task (candidates without error, $ of all its candidates) (`RunStore.task_sample_costs`).
    A task enters the overall point of k when it has at least k samples; samples without a verdict count as wrong.
    """
    classes: dict[str, dict[str | None, list]] = {}
    scored: dict[str, dict[float, list[int]]] = {}
    varied = False
    for task, answer, passed, score, count in rows:
        by_answer = classes.setdefault(task, {})
        entry = by_answer.setdefault(answer, [0, False, 0])
        entry[0] += count
        entry[1] = entry[1] or passed
        entry[2] += count if passed else 0
        group = scored.setdefault(task, {}).setdefault(score, [0, 0])
        group[0] += count
        group[1] += count if passed else 0
        varied = varied or score != float(passed)
    per_task: dict[str, list[dict[str, Any]]] = {}
    totals: dict[int, list[float]] = {}
    for task in sorted(samples):
        n, cost = samples[task]
        by_answer = classes.get(task, {})
        n = max(n, sum(e[0] for e in by_answer.values()))
        if n == 0:
            continue
        right = sum(e[2] for e in by_answer.values())
        votes = [(e[0], e[1]) for a, e in by_answer.items() if a is not None]
        groups = [(s, g[0], g[1]) for s, g in scored.get(task, {}).items()]
        points = []
        for k in k_points(n):
            point = {"k": k, "pass@k": pass_at_k_fast(n, right, k), "maj@k": maj_at_k_of_classes(votes, n, k, seed),
                     "usd": cost / n * k}
            if varied:
                point["best@k"] = best_of_k(groups, n, k)
            points.append(point)
            acc = totals.setdefault(k, [0, 0.0, 0.0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += point["pass@k"]
            acc[2] += point["maj@k"]
            acc[3] += point.get("best@k", 0.0)
            acc[4] += point["usd"]
        if len(per_task) < PER_TASK_LIMIT:
            per_task[task] = points
    overall = []
    for k in sorted(totals):
        tasks, passed, maj, best, usd = totals[k]
        point = {"k": k, "tasks": tasks, "pass@k": passed / tasks, "maj@k": maj / tasks, "usd": usd / tasks}
        if varied:
            point["best@k"] = best / tasks
        point["usd_per_point"] = point["usd"] / (100 * point["pass@k"]) if point["pass@k"] else None
        overall.append(point)
    return {"points": overall, "per_task": per_task, "tasks": len(samples),
            "per_task_listed": len(per_task), "best_of_k": varied}
