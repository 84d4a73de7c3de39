"""Selection rules on hand-made candidates."""

from selfplay.pipeline.select import (best_of_k, contaminated, majority_label, preference_pairs, rejection_sample,
                                      rl_group)
from tests.candidates import verified


def cand(i, text, passed, score=None, answer=None, error=None, task="t"):
    return verified(task, i, text, passed, score, answer=answer, error=error)


GROUP = [cand(0, "wrong 5", False, answer="5"), cand(1, "right 4", True, answer="4"),
         cand(2, "Right  4", True, answer="4"), cand(3, "also right 4", True, 0.9, answer="4"),
         cand(4, "timeout", False, answer=None, error="timeout")]


def test_rejection_sampling_keeps_passed_dedups_and_caps():
    kept = rejection_sample(GROUP)
    assert [c.sample_index for c in kept] == [1, 3]  # 2 duplicates 1 after normalisation; best score first
    assert [c.sample_index for c in rejection_sample(GROUP, cap_per_task=1)] == [1]
    assert len(rejection_sample(GROUP, dedup=False)) == 3


def test_best_of_k_ignores_verifier_errors():
    assert best_of_k(GROUP).sample_index == 1
    assert best_of_k([cand(0, "x", False, error="timeout")]) is None


def test_majority_label_needs_agreement_above_threshold():
    assert majority_label(GROUP, threshold=0.5) == "4"      # 3 of 5
    assert majority_label(GROUP, threshold=0.7) is None


def test_preference_pairs_are_passed_vs_failed_of_the_same_task():
    pairs = preference_pairs(GROUP)
    assert [(c.sample_index, r.sample_index) for c, r in pairs] == [(1, 0)]
    assert preference_pairs([cand(0, "a", True), cand(1, "b", True)]) == []


def test_rl_group_drops_groups_without_signal():
    completions, rewards = rl_group(GROUP)
    assert [c.sample_index for c in completions] == [0, 1, 2, 3] and rewards == [0.0, 1.0, 1.0, 0.9]
    assert rl_group([cand(0, "a", True), cand(1, "b", True)]) is None


def test_decontamination_by_ngram_overlap():
    eval_texts = ["the quick brown fox jumps over the lazy dog"]
    flags = contaminated(["a quick brown fox jumps over here", "nothing in common at all"], eval_texts, n=4)
    assert flags == [True, False]
