"""Selection rules: which verified candidates become training data. Small, pure functions.

What it is for: rejection sampling (keep passed, cap per task, dedup), best-of-K by score,
majority-vote pseudo-labels for tasks without a reference, preference pairs (passed vs failed of
the same task) for DPO, groups with rewards for GRPO, and n-gram decontamination against the
eval set. Each takes the candidates of ONE task (a `Scored` list) unless it says otherwise.
What it does not do: run verifiers or read the store; a candidate whose verifier failed
(`error` set) is neither a pass nor a fail, and every rule here leaves it out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from selfplay.pipeline.metrics import majority_answer


@dataclass(frozen=True)
class Scored:
    """One candidate with its verdict, as selection sees it."""

    task_id: str
    sample_index: int
    prompt: tuple[dict[str, Any], ...]
    completion: tuple[dict[str, Any], ...]   # the generated messages (assistant/tool turns)
    text: str                                # final answer text
    passed: bool
    score: float
    answer: str | None = None                # extracted answer, for majority vote
    error: str | None = None                 # set when the verifier could not decide
    steps: tuple[str, ...] = field(default=())
    token_ids: tuple[int, ...] | None = None   # the last completion message as sampled (when the backend said)
    logprobs: tuple[float, ...] | None = None  # their sampling log-probs (see agents.llm.types.Choice)

    @property
    def judged(self) -> bool:
        return self.error is None


def normalized_text(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def rejection_sample(group: Sequence[Scored], cap_per_task: int | None = None, dedup: bool = True) -> list[Scored]:
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


def best_of_k(group: Sequence[Scored]) -> Scored | None:
    """The highest-scoring judged candidate (ties: lower sample index), passed or not."""
    judged = [c for c in group if c.judged]
    return min(judged, key=lambda c: (-c.score, c.sample_index)) if judged else None


def majority_label(group: Sequence[Scored], threshold: float = 0.5) -> str | None:
    """The maj@K answer as a pseudo-label, when its share of the K samples reaches `threshold`."""
    winner, share = majority_answer([c.answer for c in group])
    return winner if winner is not None and share >= threshold else None


def preference_pairs(group: Sequence[Scored], max_pairs: int = 4) -> list[tuple[Scored, Scored]]:
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


def _cycle(items: list[Scored], length: int) -> list[Scored]:
    return [items[i % len(items)] for i in range(length)] if items else []


def rl_group(group: Sequence[Scored]) -> tuple[list[Scored], list[float]] | None:
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
