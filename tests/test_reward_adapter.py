"""Issue 26 item 3: the TRL reward adapter finds the reference in the columns TRL datasets use, raises
(naming the columns it saw) when there is none, and passes each completion's finish_reason on.

Before: `as_reward_function(verify, on_error=0.0)(prompts=..., completions=..., answer=[...])` scored
every completion 0.0 (the default `on_error`: all None) because only a `reference` column was read.
"""

from collections.abc import Sequence

import pytest

from verifiers.compose import AllOf
from verifiers.math import MathVerifier, verify
from verifiers.reward import REFERENCE_COLUMNS, ReferenceColumnError, as_reward_function, takes_reference
from verifiers.verdict import Verdict

COMPLETIONS = [[{"role": "assistant", "content": r"so \boxed{4}"}], [{"role": "assistant", "content": r"\boxed{5}"}]]


@pytest.mark.parametrize("column", REFERENCE_COLUMNS)
def test_each_usual_reference_column_is_read(column):
    for on_error in (None, 0.0):
        reward = as_reward_function(verify, on_error=on_error)
        assert reward(prompts=["p", "p"], completions=COMPLETIONS, **{column: ["4", "4"]}) == [1.0, 0.0]


def test_a_whole_solution_column_is_graded_by_its_last_box():
    reward = as_reward_function(MathVerifier())
    assert reward(COMPLETIONS, solution=[r"We get $2+2=\boxed{4}$.", r"... $\boxed{4}$"]) == [1.0, 0.0]


def test_short_answer_columns_win_over_a_solution_column():
    reward = as_reward_function(MathVerifier())
    assert reward(COMPLETIONS, solution=["no box here, 5"] * 2, answer=["4", "4"]) == [1.0, 0.0]


def test_configured_reference_column():
    reward = as_reward_function(MathVerifier(), reference_column="gold")
    assert reward(COMPLETIONS, gold=["4", "4"], answer=["5", "5"]) == [1.0, 0.0]
    with pytest.raises(ReferenceColumnError, match="'gold'"):
        reward(COMPLETIONS, answer=["4", "4"])
    with pytest.raises(ValueError):
        as_reward_function(MathVerifier(), reference_column="gold", columns={"reference": "answer"})


def test_no_reference_column_raises_with_the_columns_it_saw():
    reward = as_reward_function(verify, on_error=0.0)
    with pytest.raises(ReferenceColumnError) as raised:
        reward(prompts=["p", "p"], completions=COMPLETIONS, question=["q", "q"])
    message = str(raised.value)
    assert "no reference column" in message and "['prompts', 'question']" in message
    assert all(column in message for column in REFERENCE_COLUMNS) and "reference_column=" in message
    assert isinstance(raised.value, KeyError)


def test_finish_reason_column_is_passed_per_completion():
    reward = as_reward_function(MathVerifier())
    completions = ["The total is 4.", "The total is 4.", r"so \boxed{4}. Wait, let me"]
    for column in ("finish_reason", "finish_reasons"):
        got = reward(completions, answer=["4"] * 3, **{column: ["stop", "length", "length"]})
        assert got == [1.0, 0.0, 1.0], column  # the truncated one passes only with a committed (boxed) answer
    assert reward(completions[:2], answer=["4"] * 2, finish_reason="length") == [0.0, 0.0]
    with pytest.raises(ValueError, match="2 values for 3"):
        reward(completions, answer=["4"] * 3, finish_reason=["stop", "stop"])


def test_verifiers_without_a_reference_input_need_no_reference_column():
    def length_check(response: str) -> Verdict:
        return Verdict.ok() if len(response) < 20 else Verdict.wrong("long")

    assert not takes_reference(length_check)
    assert as_reward_function(length_check)(["short", "x" * 30], question=["q", "q"]) == [1.0, 0.0]
    assert takes_reference(AllOf({"math": MathVerifier(), "short": length_check}))
    with pytest.raises(ReferenceColumnError):
        as_reward_function(AllOf({"math": MathVerifier(), "short": length_check}))(["4"], question=["q"])


def test_finish_reason_from_trl_completion_ids_and_the_length_limit():
    """TRL passes `completion_ids`, not a finish reason: a completion at max_completion_length was cut."""
    reward = as_reward_function(MathVerifier(), max_completion_length=8)
    completions = ["The total is 4.", "The total is 4.", r"so \boxed{4}. Wait, let me"]
    ids = [[1] * 5, [1] * 8, [1] * 8]
    assert reward(completions, answer=["4"] * 3, completion_ids=ids) == [1.0, 0.0, 1.0]
    assert as_reward_function(MathVerifier())(completions, answer=["4"] * 3, completion_ids=ids) == [1.0, 1.0, 1.0]
    explicit = reward(completions[:2], answer=["4"] * 2, completion_ids=ids[:2], finish_reason=["length", "stop"])
    assert explicit == [0.0, 1.0]  # an explicit column wins over the derived one


class Column(Sequence):
    """A read-only sequence that is not a list or a tuple (as `datasets`' lazy Column is); counts its reads."""

    def __init__(self, values):
        self.values, self.reads = list(values), 0

    def __len__(self):
        return len(self.values)

    def __getitem__(self, index):
        self.reads += 1
        return self.values[index]


@pytest.mark.parametrize("make", [tuple, Column], ids=["tuple", "custom_sequence"])
def test_columns_may_be_any_sequence_not_only_lists(make):
    """TRL passes `datasets` columns, which need not be lists: before, a non-list column was silently skipped (the
    reference not found, the finish reasons and TRL's completion_ids ignored)."""
    completions = make(["The total is 4.", "The total is 4.", r"so \boxed{4}. Wait, let me"])
    answers = make(["4", "4", "4"])
    assert as_reward_function(MathVerifier())(completions, answer=answers) == [1.0, 1.0, 1.0]
    reasons = make(["stop", "length", "length"])
    assert as_reward_function(MathVerifier())(completions, answer=answers, finish_reason=reasons) == [1.0, 0.0, 1.0]
    ids = make([[1] * 5, [1] * 8, [1] * 8])
    cut = as_reward_function(MathVerifier(), max_completion_length=8)
    assert cut(completions, answer=answers, completion_ids=ids) == [1.0, 0.0, 1.0]
    messages = make([make([{"role": "assistant", "content": r"so \boxed{4}"}]),
                     make([{"role": "assistant", "content": r"\boxed{5}"}])])
    assert as_reward_function(verify)(messages, ground_truth=make(["4", "4"])) == [1.0, 0.0]


def test_a_lazy_column_is_read_once_per_batch():
    answers = Column(["4"] * 6)
    assert as_reward_function(MathVerifier())(["so 4"] * 6, answer=answers) == [1.0] * 6
    assert answers.reads <= len(answers) + 1  # listed once (iteration), not indexed again per row


def test_a_datasets_column_is_read():
    datasets = pytest.importorskip("datasets")
    column = datasets.Dataset.from_dict({"answer": ["4", "4"]})["answer"]
    assert as_reward_function(verify)(COMPLETIONS, answer=column) == [1.0, 0.0]
