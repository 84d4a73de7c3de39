"""What K buys, against hand-computed values: pass@k (any n), maj@k (ties and abstentions), best-of-k by score, the
curve with its price, and the compact stored body of a candidate (and that older bodies still load)."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import pytest

from selfplay.core.candidate import Candidate
from selfplay.pipeline.metrics import (best_of_k, k_curve, k_points, maj_at_k_of_classes, pass_at_k, pass_at_k_fast)


def exact_pass(n: int, c: int, k: int) -> float:
    return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def test_pass_at_k_by_hand_and_at_a_million_samples():
    assert pass_at_k_fast(4, 2, 1) == pytest.approx(0.5)
    assert pass_at_k_fast(4, 2, 2) == pytest.approx(5 / 6)  # 1 - C(2,2)/C(4,2) = 1 - 1/6
    assert pass_at_k_fast(4, 2, 3) == 1.0
    for n, c, k in [(1000, 10, 100), (1000, 900, 50), (20_000, 3, 4096), (1_000_000, 1000, 1000),
                    (1_000_000, 200_000, 5)]:
        assert pass_at_k_fast(n, c, k) == pytest.approx(exact_pass(n, c, k), rel=1e-9, abs=1e-12)
    assert pass_at_k_fast(1_000_000, 1000, 1000) == pytest.approx(pass_at_k(1_000_000, 1000, 1000), rel=1e-12)
    # both products long: log-gamma (one sample in ten right, k = 200k of 1M: certain to contain one)
    assert pass_at_k_fast(1_000_000, 150_000, 200_000) == pytest.approx(1.0)
    assert pass_at_k_fast(1_000_000, 0, 200_000) == 0.0
    with pytest.raises(ValueError):
        pass_at_k_fast(3, 1, 4)


def test_k_points_double_up_to_k_and_end_at_k():
    assert k_points(1) == [1]
    assert k_points(8) == [1, 2, 4, 8]
    assert k_points(1000) == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]


def test_maj_at_k_by_hand_ties_share_the_credit():
    # answers A (right) x2, B (wrong) x1: maj@2 over the 3 pairs: AA -> 1, AB twice -> a tie, half each
    classes = [(2, True), (1, False)]
    assert maj_at_k_of_classes(classes, 3, 1) == pytest.approx(2 / 3)
    assert maj_at_k_of_classes(classes, 3, 2) == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert maj_at_k_of_classes(classes, 3, 3) == pytest.approx(1.0)


def test_maj_at_k_by_hand_samples_without_an_answer_do_not_vote():
    # A right x1, B wrong x1, two samples with no answer; the 6 pairs: AB tie (0.5), Ax twice (1), Bx twice, xx (0)
    assert maj_at_k_of_classes([(1, True), (1, False)], 4, 2) == pytest.approx(2.5 / 6)
    assert maj_at_k_of_classes([], 4, 2) == 0.0


def test_maj_at_k_estimate_agrees_with_the_exact_sum_where_both_run():
    from selfplay.pipeline import metrics

    classes = [(30, True)] + [(12, False)] * 4 + [(1, False)] * 10
    exact = metrics.maj_at_k_of_classes(classes, 100, 9)
    saved = metrics.MAJ_CLASSES
    metrics.MAJ_CLASSES = 4  # the ten singletons become the tail: Monte-Carlo (their singleton votes are exact)
    try:
        estimate = metrics.maj_at_k_of_classes(classes, 100, 9, seed=3)
    finally:
        metrics.MAJ_CLASSES = saved
    assert estimate == pytest.approx(exact, abs=0.06)


def test_best_of_k_by_hand():
    scored = [(0.9, 1, 1), (0.5, 2, 0)]  # the best-scored sample is the right one
    assert best_of_k(scored, 3, 1) == pytest.approx(1 / 3)
    assert best_of_k(scored, 3, 2) == pytest.approx(2 / 3)  # right iff the pair holds it: 1 - C(2,2)/C(3,2)
    assert best_of_k(scored, 3, 3) == pytest.approx(1.0)
    assert best_of_k([(0.5, 2, 1)], 2, 2) == pytest.approx(0.5)  # equal scores: picked at random
    assert best_of_k([(0.5, 1, 1)], 2, 2) == pytest.approx(1.0)  # an unscored sample ranks last


def test_the_curve_by_hand_per_task_and_overall_with_its_price():
    rows = [("a", '["1"]', True, 1.0, 2), ("a", '["2"]', False, 0.0, 1), ("a", None, False, 0.0, 1),
            ("b", '["3"]', False, 0.0, 2)]
    samples = {"a": (4, 0.4), "b": (2, 0.1)}
    curve = k_curve(rows, samples)
    a = {p["k"]: p for p in curve["per_task"]["a"]}
    assert [p["k"] for p in curve["per_task"]["a"]] == [1, 2, 4]
    assert a[1]["pass@k"] == pytest.approx(0.5) and a[2]["pass@k"] == pytest.approx(5 / 6) and a[4]["pass@k"] == 1
    # maj@2 of A A B x: AA 1, AB twice 0.5, Ax twice 1, Bx 0, ... over 6 pairs = 4 / 6
    assert a[1]["maj@k"] == pytest.approx(0.5) and a[2]["maj@k"] == pytest.approx(4 / 6) and a[4]["maj@k"] == 1
    assert [a[k]["usd"] for k in (1, 2, 4)] == pytest.approx([0.1, 0.2, 0.4])
    overall = {p["k"]: p for p in curve["points"]}
    assert overall[1]["tasks"] == 2 and overall[1]["pass@k"] == pytest.approx(0.25)
    assert overall[2]["pass@k"] == pytest.approx((5 / 6 + 0) / 2)
    assert overall[4]["tasks"] == 1 and overall[4]["pass@k"] == 1.0  # b has only 2 samples
    assert overall[1]["usd"] == pytest.approx((0.1 + 0.05) / 2)
    assert overall[1]["usd_per_point"] == pytest.approx(0.075 / 25)
    assert curve["best_of_k"] is False and "best@k" not in overall[1]


def test_the_curve_shows_best_of_k_where_scores_vary():
    rows = [("a", '["1"]', True, 0.9, 1), ("a", '["2"]', False, 0.5, 2)]
    curve = k_curve(rows, {"a": (3, 0.3)})
    assert curve["best_of_k"] is True
    assert [p["best@k"] for p in curve["points"]] == pytest.approx([1 / 3, 2 / 3, 1.0])


def _candidate(**extra) -> Candidate:
    values = dict(task_id="t0", workflow="direct", sample_index=123_456, model="mock-model", task_kind="math",
                  prompt=[{"role": "user", "content": "What is 6 * 7?"}],
                  completion=[{"role": "assistant", "content": "6 * 7 = 42. The answer is \\boxed{42}."}],
                  final_answer="6 * 7 = 42. The answer is \\boxed{42}.",
                  steps=["6 * 7 = 42. The answer is \\boxed{42}."], finish_reason="stop", cost_usd=4.2e-05, turns=1,
                  stop_reason="final")
    values.update(extra)
    return Candidate(**values)


def test_a_stored_body_is_compact_and_loads_back_equal():
    candidate = _candidate()
    pid, body = candidate.to_store()
    assert len(body.encode()) < 300, body  # defaults left out, the answer written once
    assert "The answer" in body and body.count("boxed") == 1
    assert Candidate.from_store(body, candidate.prompt) == candidate
    other = _candidate(steps=["6 * 7 = 42.", "The answer is \\boxed{42}."], error="timeout", metadata={"x": 1},
                       completion_token_ids=[1, 2], completion_logprobs=[-0.1, -0.2])
    assert Candidate.from_store(other.to_store()[1], other.prompt) == other


def test_bodies_written_before_the_compact_form_still_load():
    candidate = _candidate()
    full = candidate.model_dump(mode="json", exclude={"prompt", "verdict"})  # the previous version's body
    assert Candidate.from_store(json.dumps(full), candidate.prompt) == candidate
    version_1 = {**full, "messages": [*candidate.prompt, *candidate.completion], "prompt_messages": 1}
    del version_1["completion"]
    assert Candidate.from_store(json.dumps(version_1)) == candidate
