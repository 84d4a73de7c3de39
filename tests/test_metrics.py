"""Metrics against values computed by hand."""

from math import comb

import pytest

from selfplay.pipeline.metrics import coverage, maj_at_k, majority_answer, mean_pass_at_k, pass_at_k, yield_rate


@pytest.mark.parametrize("n,c,k", [(10, 3, 1), (10, 3, 5), (8, 0, 4), (8, 8, 1), (16, 2, 8), (5, 1, 5)])
def test_pass_at_k_matches_the_binomial_formula(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))


def test_pass_at_k_by_hand():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)       # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 2, 2) == pytest.approx(5 / 6)     # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert mean_pass_at_k([(4, 1), (4, 0)], 1) == pytest.approx(0.125)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 8)


def test_majority_vote_and_maj_at_k():
    assert majority_answer(["3", "4", "3", None]) == ("3", 0.5)
    assert majority_answer(["4", "3"]) == ("4", 0.5)  # tie: first seen
    assert majority_answer([None, ""]) == (None, 0.0)
    assert maj_at_k(["3", "4", "3"], [True, False, True]) is True
    assert maj_at_k(["4", "4", "3"], [False, False, True]) is False


def test_coverage_and_yield():
    assert coverage([0, 2, 1, 0]) == 0.5
    assert yield_rate(3, 12) == 0.25 and yield_rate(0, 0) == 0.0
