"""Dedup: shared verdict keys, verification groups, near-duplicate counts on hand-made texts."""

from agents.workflows.dedup import (answer_key, dedup_report, jaccard, near_duplicates, normalize, shingles,
                                    verification_groups)
from agents.workflows.trajectory import Trajectory


def traj(task, answer, error=None, index=0):
    return Trajectory(task_id=task, sample_index=index, workflow="direct", model="m",
                      messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}],
                      final_answer=answer, error=error)


def test_exact_mode_ignores_line_endings_and_trailing_space_but_not_indentation_or_case():
    assert normalize("x = 1  \r\n\r\nprint(x)\n\n") == "x = 1\n\nprint(x)"
    assert answer_key("t", "def f():\n  return 1") != answer_key("t", "def f():\nreturn 1")
    assert answer_key("t", "Print(1)") != answer_key("t", "print(1)")
    assert answer_key("t", "ﬁ") == answer_key("t", "fi")                   # NFKC
    assert answer_key("t1", "42") != answer_key("t2", "42")                 # per task


def test_whitespace_mode_collapses_all_whitespace():
    assert answer_key("t", "The answer\n\n is  \\boxed{4}", "whitespace") == answer_key("t", "The answer is \\boxed{4}",
                                                                                          "whitespace")


def test_verification_groups_share_one_verdict_and_skip_failed_rollouts():
    items = [traj("a", "\\boxed{4}"), traj("a", "\\boxed{4}  \n"), traj("a", "\\boxed{5}"),
             traj("b", "\\boxed{4}"), traj("a", "", error="timeout")]
    assert verification_groups(items) == [[0, 1], [2], [3]]


def test_near_duplicates_by_shingle_jaccard():
    base = "First we add two and two which gives four so the final answer is four"
    near = base + " indeed"
    assert jaccard(shingles(base), shingles(near)) >= 0.9
    other = "Multiply three by five to get fifteen then subtract eleven to get four"
    assert near_duplicates([base, near, other, base]) == 2
    assert near_duplicates([base, other]) == 0
    assert near_duplicates([]) == 0 and near_duplicates(["", ""]) == 1


def test_report_counts_per_task():
    base = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen"
    items = [traj("a", base), traj("a", base), traj("a", base + " sixteen"), traj("b", base),
             traj("a", "x", error="budget")]
    report = dedup_report(items)
    assert (report.candidates, report.unique_answers, report.exact_duplicates, report.near_duplicates) == (4, 3, 1, 2)
