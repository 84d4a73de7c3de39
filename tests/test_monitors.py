"""Monitors against hand-computed values, and the verifier audit catching a lenient verifier being hacked."""

from __future__ import annotations

import math
import re

from selfplay.pipeline.monitors import (audit, distinct_answers, distinct_ngrams, entropy_and_kl, last_number_matches,
                               text_monitors)
from selfplay.core.candidate import Candidate
from tests.candidates import verified


def item(task: str, text: str, answer: str | None = None, passed: bool = True, index: int = 0) -> Candidate:
    return verified(task, index, text, passed, answer=answer, prompt=[{"role": "user", "content": task}])


def test_diversity_and_length_by_hand():
    items = [item("a", "x y z", "1"), item("a", "x y w", "1"), item("b", "p q", "2"), item("b", "p q", "3")]
    assert distinct_answers(items) == (1 / 2 + 2 / 2) / 2
    # 2-grams: (x y) (y z) (x y) (y w) (p q) (p q): 6 in all, 4 distinct
    assert distinct_ngrams([c.text for c in items], 2) == 4 / 6
    assert distinct_ngrams(["85", "86"], 2) is None  # one-word answers have no 2-grams: not "no diversity"
    records = [c.model_copy(update={"usage": c.usage.model_copy(update={"completion_tokens": n})})
               for c, n in zip(items, (3, 5, 2, 6))]
    assert text_monitors(items, records)["mean_length"] == 4.0


def test_entropy_and_k3_kl_by_hand():
    policy = [[-1.0, -2.0], [-0.5]]
    ref = [[-1.0, -3.0], [-0.5]]
    out = entropy_and_kl(policy, ref)
    assert math.isclose(out["policy_entropy"], 3.5 / 3)
    d = -1.0  # log ref - log pi on the second token; the others are 0
    assert math.isclose(out["kl_to_cold_start"], (math.exp(d) - 1 - d) / 3)
    assert entropy_and_kl(policy, policy)["kl_to_cold_start"] == 0.0


def lenient(text: str, reference: str) -> bool:
    """The hackable verifier: the right number anywhere in the response."""
    return reference in re.findall(r"-?\d+", text)


def test_audit_flags_a_policy_that_lists_many_numbers_to_a_lenient_verifier():
    references = {f"t{i}": str(40 + i) for i in range(20)}
    honest = [item(t, f"40 + {i} = {ref}") for i, (t, ref) in enumerate(references.items())]
    hacked = [item(t, " ".join(str(n) for n in range(30, 80))) for t in references]
    for rows in (honest, hacked):
        assert all(lenient(c.text, references[c.task_id]) for c in rows)  # the loop's verifier accepts them all
    clean = audit(honest, references, fraction=0.5, seed=0, threshold=0.2)
    assert clean["audited"] == 10 and clean["disagreements"] == 0 and not clean["alarm"]
    flagged = audit(hacked, references, fraction=0.5, seed=0, threshold=0.2)
    assert flagged["alarm"] and flagged["disagreement_rate"] > 0.9 and flagged["examples"]
    assert audit(hacked, references, fraction=0.0, seed=0, threshold=0.2)["alarm"] is False


def test_strict_checker_cannot_audit_without_a_numeric_reference():
    assert last_number_matches(item("a", "so 85"), "85") is True
    assert last_number_matches(item("a", "85 or 86"), "85") is False
    assert last_number_matches(item("a", "85"), None) is None


def test_report_section_shows_monitors_audit_alarm_and_rejections():
    from selfplay.pipeline.monitors import report_lines

    rounds = [{"round": 0, "monitors": {"distinct_answers": 0.5, "kl_to_cold_start": 0.0}},
              {"round": 1, "monitors": {"distinct_answers": 0.25}, "audit": {"audited": 4, "disagreement_rate": 0.75,
                                                                            "alarm": True},
               "rejected": True, "reasons": ["held-out pass@1 fell"]}]
    text = "\n".join(report_lines(rounds))
    assert "| 0 | 0.500 | - | - | - | 0.000 | - | yes |" in text
    assert "0.75 of 4 ALARM" in text and "rejected: held-out pass@1 fell" in text
    assert report_lines([{"round": 0}]) == []
