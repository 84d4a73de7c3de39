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

import math
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


# --- dynamic sampling (DAPO) and the "no signal" measure -------------------------------------------------------------
# A group (the K samples of one task) teaches GRPO only when its rewards differ, DPO only when it makes a pair, SFT
# only when something passed. These helpers count such groups and plan how many more tasks to draw to reach a target.

NO_SIGNAL_SHARE = 0.05   # below this share of groups with a learning signal a round is flagged "no signal"


def signal(groups: Iterable[Sequence[Candidate]], has_signal) -> dict[str, object]:
    """`{"groups": n, "mixed": m, "share": m / n, "no_signal": share < NO_SIGNAL_SHARE}` over groups with a judged
    candidate; `has_signal(group)` says whether one group carries a learning signal."""
    judged = [g for g in groups if any(c.judged for c in g)]
    mixed = sum(1 for g in judged if has_signal(g))
    share = mixed / len(judged) if judged else 0.0
    return {"groups": len(judged), "mixed": mixed, "share": round(share, 4), "no_signal": share < NO_SIGNAL_SHARE}


def mixed_rewards(group: Sequence[Candidate]) -> bool:
    """GRPO's signal: the group's judged rewards are not all equal."""
    return rl_group(group) is not None


def has_pair(group: Sequence[Candidate]) -> bool:
    """DPO's signal: a passed and a failed candidate of distinct texts."""
    return bool(preference_pairs(group, 1))


def has_pass(group: Sequence[Candidate]) -> bool:
    """SFT's signal: at least one passed candidate."""
    return any(c.judged and c.passed for c in group)


def topup_tasks(have: int, target: int, drawn_tasks: int, extra_samples: int, max_extra: int, k: int,
                left: int) -> int:
    """How many more tasks to draw so that `have` groups with a signal reach `target` (DAPO's dynamic sampling).

    The estimate divides what is missing by the share of signal groups so far (`have` of `drawn_tasks`; at least
    1 in 8 is assumed so a batch with none still draws a bounded wave), rounded up, and is capped by the extra
    samples left (`max_extra - extra_samples`, K per task) and the tasks left to draw (`left`). 0: stop."""
    missing = target - have
    if missing <= 0 or k <= 0:
        return 0
    rate = max(have / drawn_tasks if drawn_tasks else 0.0, 0.125)
    wanted = math.ceil(missing / rate - 1e-9)
    budget = (max_extra - extra_samples) // k
    return max(0, min(wanted, budget, left))
