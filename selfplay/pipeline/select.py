"""Selection rules: which verified candidates become training data. Small, pure functions.

What it is for: rejection sampling (keep passed, cap per task, dedup), best-of-K by score,
majority-vote pseudo-labels for tasks without a reference, preference pairs (passed vs failed of
the same task) for DPO, groups with rewards for GRPO, and n-gram decontamination against the
eval set. Each takes the verified candidates of ONE task (`Candidate`s with their verdicts) unless it says
otherwise.
What it does not do: run verifiers or read the store; a candidate whose verifier failed
(`error` set) is neither a pass nor a fail, and every rule here leaves it out.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence

from selfplay.core.candidate import Candidate
from selfplay.pipeline.metrics import majority_answer


def normalized_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def rejection_sample(group: Sequence[Candidate], cap_per_task: int | None = None, dedup: bool = True) -> list[Candidate]:
    """Passed candidates, best score first (ties: lower sample index), duplicates by text dropped, capped."""
    kept, seen = [], set()
    for cand in sorted((c for c in group if c.judged and c.passed), key=lambda c: (-c.score, c.sample_index)):
        key = normalized_text(cand.text)
        if dedup and key in seen:
            continue
        seen.add(key)
        kept.append(cand)
        if cap_per_task is not None and len(kept) >= cap_per_task:
            break
    return kept


def best_of_k(group: Sequence[Candidate]) -> Candidate | None:
    """The highest-scoring judged candidate (ties: lower sample index), passed or not."""
    judged = [c for c in group if c.judged]
    return min(judged, key=lambda c: (-c.score, c.sample_index)) if judged else None


def majority_label(group: Sequence[Candidate], threshold: float = 0.5) -> str | None:
    """The maj@K answer as a pseudo-label, when its share of the K samples reaches `threshold`."""
    winner, share = majority_answer([c.answer for c in group])
    return winner if winner is not None and share >= threshold else None


def preference_pairs(group: Sequence[Candidate], max_pairs: int = 4) -> list[tuple[Candidate, Candidate]]:
    """(chosen, rejected) pairs: passed vs failed of the same task, distinct texts, in sample order."""
    chosen = rejection_sample(group)
    rejected, seen = [], set()
    for cand in sorted(group, key=lambda c: c.sample_index):
        key = normalized_text(cand.text)
        if cand.judged and not cand.passed and key not in seen:
            seen.add(key)
            rejected.append(cand)
    pairs = [(c, r) for c, r in zip(_cycle(chosen, len(rejected)), rejected)]
    return pairs[:max_pairs]


def _cycle(items: list[Candidate], length: int) -> list[Candidate]:
    return [items[i % len(items)] for i in range(length)] if items else []


def rl_group(group: Sequence[Candidate]) -> tuple[list[Candidate], list[float]] | None:
    """The judged candidates and their rewards; None when all rewards are equal (no learning signal)."""
    judged = sorted((c for c in group if c.judged), key=lambda c: c.sample_index)
    rewards = [c.score for c in judged]
    if len(judged) < 2 or max(rewards) == min(rewards):
        return None
    return judged, rewards


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


def contaminated(texts: Iterable[str], eval_texts: Iterable[str], n: int = 13) -> list[bool]:
    """For each text: does it share an n-gram (of words) with any eval text? (n=13 as in GPT-3's check.)"""
    eval_grams: set[tuple[str, ...]] = set()
    for text in eval_texts:
        eval_grams |= ngrams(text, n)
    return [bool(ngrams(text, n) & eval_grams) for text in texts]
