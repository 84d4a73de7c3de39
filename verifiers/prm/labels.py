"""Automatic step labels, Math-Shepherd style: what completions sampled from a step prefix tell about that step.

What it is for: the pure half of `selfplay prm-label`. For a candidate cut into steps, the job samples N
completions with the policy from each prefix (steps 1..i) and verifies their final answers; these
functions turn those verdicts into labels and rows:
  hard_label   True when ANY completion from the prefix reached a verified answer (the step is still on a
               path to the answer), False when none did;
  soft_label   the FRACTION that did;
  both         None when no completion could be checked (every verdict an error): unknown is not wrong.
The last step needs no rollouts: its prefix is the whole candidate, labelled by the candidate's own verdict
(`final_step_label`). `prm_row` builds the TRL PRM row, leaving out a candidate with an unknown label.
What it does not do: sample or verify (the job does, through the workflows and the math verifier).
"""

from __future__ import annotations

from typing import Any, Sequence

from verifiers.verdict import Verdict


def checked(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """The verdicts that decided something (no `error`)."""
    return [v for v in verdicts if v.error is None]


def hard_label(verdicts: Sequence[Verdict]) -> bool | None:
    decided = checked(verdicts)
    return any(v.passed for v in decided) if decided else None


def soft_label(verdicts: Sequence[Verdict]) -> float | None:
    decided = checked(verdicts)
    return sum(v.passed for v in decided) / len(decided) if decided else None


def final_step_label(candidate: Verdict, soft: bool = False) -> bool | float | None:
    """The label of the last step: the candidate's own outcome (None when its check failed)."""
    if candidate.error is not None:
        return None
    return (1.0 if candidate.passed else 0.0) if soft else candidate.passed


def step_labels(rollout_verdicts: Sequence[Sequence[Verdict]], candidate: Verdict,
                soft: bool = False) -> list[bool | float | None]:
    """Labels of all steps: rollouts from each prefix but the last, then the candidate's own verdict."""
    label = soft_label if soft else hard_label
    return [label(v) for v in rollout_verdicts] + [final_step_label(candidate, soft)]


def prm_row(prompt: Any, steps: Sequence[str], labels: Sequence[bool | float | None]) -> dict[str, Any] | None:
    """A `{"prompt", "completions", "labels"}` row, or None when a label is unknown or the counts differ."""
    if not steps or len(steps) != len(labels) or any(label is None for label in labels):
        return None
    return {"prompt": prompt, "completions": list(steps), "labels": list(labels)}
