"""Adaptive K against hand-computed cases of the documented rule."""

import pytest

from agents.workflows.adaptive import AdaptiveK, next_batch, samples_per_solved


@pytest.mark.parametrize("sampled, passed, expected", [(0, 0, 8), (8, 0, 0), (8, 8, 0), (5, 1, 3)])
def test_fixed_k_draws_k_then_stops(sampled, passed, expected):
    assert next_batch(sampled, passed, AdaptiveK(k=8)) == expected


ADAPTIVE = AdaptiveK(k=8, k_max=32, stop_after_verified=4, batch=8)


@pytest.mark.parametrize("sampled, passed, expected, why", [
    (0, 0, 8, "the first k always"),
    (8, 0, 0, "nothing passed: spend elsewhere"),
    (8, 4, 0, "M verified: done"),
    (8, 1, 8, "1/8 passed: 3 more need ~24 samples; a full batch"),
    (8, 3, 3, "3/8 passed: 1 more needs ceil(1 / 0.375) = 3"),
    (16, 2, 8, "2/16: 2 more need 16; a full batch"),
    (28, 3, 4, "only 4 left under k_max"),
    (32, 3, 0, "k_max reached"),
])
def test_adaptive_rule(sampled, passed, expected, why):
    assert next_batch(sampled, passed, ADAPTIVE) == expected, why


def test_without_m_low_but_nonzero_rates_get_more():
    settings = AdaptiveK(k=4, k_max=12, batch=4, low_pass_rate=0.5)
    assert next_batch(4, 1, settings) == 4      # 25%: hard but solvable
    assert next_batch(4, 2, settings) == 0      # 50%: easy enough
    assert next_batch(4, 0, settings) == 0
    assert next_batch(8, 1, settings) == 4 and next_batch(12, 1, settings) == 0


def test_settings_and_counts_are_validated():
    with pytest.raises(ValueError, match="k_max"):
        AdaptiveK(k=8, k_max=4)
    with pytest.raises(ValueError, match="bad counts"):
        next_batch(2, 3, AdaptiveK())
    with pytest.raises(ValueError):
        AdaptiveK(kmax=3)


def test_samples_per_solved_task():
    assert samples_per_solved([(8, 1), (8, 0), (16, 4)]) == 32 / 2
    assert samples_per_solved([(8, 0)]) is None
