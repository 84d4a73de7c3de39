"""The labelled set (tests/data/math_cases.jsonl) through the public `verifiers.math.verify`."""

import json
from pathlib import Path

import pytest

from verifiers.math import verify

CASES = [json.loads(line) for line in (Path(__file__).parent / "data" / "math_cases.jsonl").read_text().splitlines()]


def test_set_is_large_and_balanced():
    assert len(CASES) >= 300
    assert sum(not c["expected"] for c in CASES) / len(CASES) >= 0.40
    assert len({c["id"] for c in CASES}) == len(CASES)


def test_every_labelled_case():
    mistakes = []
    for case in CASES:
        verdict = verify(case["response"], case["reference"], timeout=10.0)
        if verdict.error is not None or verdict.passed != case["expected"]:
            mistakes.append((case["id"], case["response"][:60], case["reference"], verdict.reason, verdict.error))
    assert not mistakes, "\n".join(map(repr, mistakes))


@pytest.mark.parametrize("category", sorted({c["category"] for c in CASES}))
def test_no_false_positive_in_category(category):
    """Cheap guard over the negatives alone, category by category, so a regression names its kind."""
    negatives = [c for c in CASES if c["category"] == category and not c["expected"]]
    wrongly_passed = [c["id"] for c in negatives if verify(c["response"], c["reference"]).passed]
    assert not wrongly_passed
