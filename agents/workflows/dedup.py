"""Dedup before verification: identical answers verified once, near-identical trajectories counted.

What it is for:
- `answer_key(task_id, text, mode)`: the key under which one verdict is shared. Text is normalised
  first: `exact` (default: Unicode NFKC, `\\r\\n` -> `\\n`, trailing spaces of lines and blank edges
  dropped; indentation and case kept, so two programs that differ are never merged) or `whitespace`
  (every whitespace run -> one space; for math / prose answers, not for Python);
- `verification_groups(trajectories, mode)`: indices grouped by key, first-seen order; verify the first
  of each group and give its verdict to the rest. Failed trajectories (`error` set) are left out;
- `near_duplicates(texts, threshold, n)`: how many texts are near-copies of an earlier one (word
  n-gram shingles, Jaccard >= threshold, greedy against cluster representatives, with a size-ratio
  bound that skips pairs that cannot reach the threshold). Per task; O(K x clusters) set operations;
- `dedup_report(trajectories)`: the counts for the summary.
What it does NOT do: decide correctness (two different texts with the same answer are verified apart),
or dedup across tasks (keys include the task id).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections import defaultdict
from typing import Literal, Sequence

from pydantic import BaseModel

from agents.workflows.trajectory import Trajectory

Mode = Literal["exact", "whitespace"]
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def normalize(text: str, mode: Mode = "exact") -> str:
    text = unicodedata.normalize("NFKC", text or "").replace("\r\n", "\n").replace("\r", "\n")
    if mode == "whitespace":
        return " ".join(text.split())
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


def answer_key(task_id: str, text: str, mode: Mode = "exact") -> str:
    return hashlib.sha256(f"{task_id}\0{normalize(text, mode)}".encode()).hexdigest()


def verification_groups(trajectories: Sequence[Trajectory], mode: Mode = "exact") -> list[list[int]]:
    """Indices of trajectories with the same task and normalised final answer; errored ones left out."""
    groups: dict[str, list[int]] = {}
    for index, trajectory in enumerate(trajectories):
        if trajectory.error is None:
            groups.setdefault(answer_key(trajectory.task_id, trajectory.final_answer, mode), []).append(index)
    return list(groups.values())


def shingles(text: str, n: int = 3) -> frozenset[tuple[str, ...]]:
    words = _WORD.findall((text or "").lower())
    if len(words) <= n:
        return frozenset([tuple(words)])
    return frozenset(zip(*(words[i:] for i in range(n))))  # every run of n consecutive words


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def near_duplicates(texts: Sequence[str], threshold: float = 0.9, n: int = 3) -> int:
    """How many texts have Jaccard >= threshold with an earlier one (exact copies included)."""
    representatives: list[frozenset] = []
    seen: set[str] = set()
    count = 0
    for text in texts:
        if text in seen and threshold <= 1.0:  # an exact copy (Jaccard 1): no shingles needed
            count += 1
            continue
        seen.add(text)
        current = shingles(text, n)
        if any(_could_match(current, rep, threshold) and jaccard(current, rep) >= threshold
               for rep in representatives):
            count += 1
        else:
            representatives.append(current)
    return count


def _could_match(a: frozenset, b: frozenset, threshold: float) -> bool:
    small, large = sorted((len(a), len(b)))
    return large == 0 or small / large >= threshold


class DedupReport(BaseModel):
    candidates: int          # trajectories without error
    unique_answers: int      # verifier runs needed
    exact_duplicates: int    # verifier runs saved
    near_duplicates: int     # trajectories near-identical (Jaccard >= threshold) to an earlier one of the task


def dedup_report(trajectories: Sequence[Trajectory], mode: Mode = "exact", threshold: float = 0.9,
                 n: int = 3) -> DedupReport:
    groups = verification_groups(trajectories, mode)
    ok = [t for t in trajectories if t.error is None]
    by_task: dict[str, list[str]] = defaultdict(list)
    for trajectory in ok:
        by_task[trajectory.task_id].append(_whole_text(trajectory))
    near = sum(near_duplicates(texts, threshold, n) for texts in by_task.values())
    return DedupReport(candidates=len(ok), unique_answers=len(groups), exact_duplicates=len(ok) - len(groups),
                       near_duplicates=near)


def _whole_text(trajectory: Trajectory) -> str:
    """The generated part of a trajectory as one text (what near-duplicate counting compares)."""
    return "\n".join(f"{m.get('content') or ''} {json.dumps(m['tool_calls']) if m.get('tool_calls') else ''}"
                     for m in trajectory.completion_messages)
