"""Issue 22, math: no committed answer, no pass.

Truncated rollouts whose intermediate value equals the reference, hedged last paragraphs and changes
of mind must fail (each would pass on the verifier before wave 3); committed answers (a box, a closed
"the answer is") and plain complete conclusions must still pass. Through `check` (fast, in-process)
and the public `verify` / `MathVerifier` / `verify_batch` with `finish_reason`.
"""

import asyncio
import time

import pytest

from verifiers.compose import verify_batch
from verifiers.math import MathVerifier, averify, verify
from verifiers.math.check import check
from verifiers.math.conclusion import cut_off, is_truncated

ISSUE_EXAMPLE = ("There are 4 choices for the first seat and 6 for the rest, so we would divide by 5 to get $24$. "
                 "Hmm, the problem also says reflections count as the same, so")
TRUNCATED_AT_INTERMEDIATE = [  # (response, reference): cut by max_tokens; the last value seen equals the reference
    (ISSUE_EXAMPLE, "24"),
    ("First, $3 \\cdot 8 = 24$. Next we subtract the overlaps, which gives", "24"),
    ("The sum of the roots is $-b/a = 7$.\n\nNow the product of the roots is $c/a$, and so", "7"),
    ("Let $n = 12$. Then the number of diagonals is", "12"),
    ("We have 3 + 4 = 7. Then multiplying by", "7"),
    ("So far the total is 24 and then we", "24"),
    ("The total is 24, but", "24"),
]
HEDGED_LAST_PARAGRAPHS = [  # complete text, but the last value is only considered
    ("Counting again.\n\nSo we would divide by 5 to get $24$.", "24"),
    ("Maybe the total is 24.", "24"),
    ("The count is $24$ if we ignore the reflections.", "24"),
    ("If the count is $24$ we are done.", "24"),
    ("Suppose the answer is 24... let's see.", "24"),
    ("Let's check: $4 \\cdot 6 = 24$.", "24"),
    ("Hmm, is it $24$?", "24"),
    ("Wait, that gives 24.", "24"),
    ("Perhaps there are 24 arrangements.", "24"),
]
CHANGES_OF_MIND = [
    ("The total is 24. But wait, we double counted the corners.", "24"),
    ("The total is $24$. However, reflections are identical.", "24"),
    ("So there are $24$ ways. Actually, rotations are the same.", "24"),
    ("That leaves 24. Hmm, that seems too many.", "24"),
]
COMPLETE_CONCLUSIONS = [  # must still pass (finish_reason unknown or "stop")
    ("The total is 24.", "24"),
    ("Thus there are $24$ arrangements.", "24"),
    ("So the block weighs 12kg", "12"),
    ("If $N^2 = 121$, then $N = 11$.", "11"),
    ("So, if there are 18 inches in one turn, the speed is $12$ inches per second.", "12"),
    ("The probability that Alice wins is 2/3. <|im_start|>user", "2/3"),
    ("We add them: $3 + 4 = 7$.\n\nHence the sum is $7$.", "7"),
    ("28 percent", "28"),
]


@pytest.mark.parametrize("response, reference", TRUNCATED_AT_INTERMEDIATE)
def test_truncated_rollout_never_passes_on_an_intermediate_value(response, reference):
    for finish_reason in (None, "length"):  # cut off mid-sentence: no pass even when the caller does not say so
        result = check(response, reference, finish_reason=finish_reason)
        assert result["passed"] is False and result["error"] is None, (finish_reason, result)


@pytest.mark.parametrize("response, reference", HEDGED_LAST_PARAGRAPHS + CHANGES_OF_MIND)
def test_a_considered_or_retracted_value_is_no_answer(response, reference):
    result = check(response, reference)
    assert result["passed"] is False and result["details"]["source"] in ("considered", "retracted"), result


@pytest.mark.parametrize("response, reference", COMPLETE_CONCLUSIONS)
def test_complete_conclusions_still_pass(response, reference):
    assert check(response, reference)["passed"] is True
    assert check(response, reference, finish_reason="stop")["passed"] is True


@pytest.mark.parametrize("response", [
    "The total is 24.", "Thus there are $24$ arrangements.", "24", "The answer is 24", "Answer: 24",
    "The answer is 24.", "The final answer is 24", "The answer is $24", "#### 24",
])
def test_truncated_completion_without_a_committed_answer_fails(response):
    """With finish_reason "length" only a box or a closed statement counts: `24` may be `240` cut short."""
    result = check(response, "24", finish_reason="length")
    assert result["passed"] is False and "truncated" in result["reason"], result


@pytest.mark.parametrize("response", [
    r"So \boxed{24}. Wait, let me re-check the reflections, since",
    "The answer is $24$",
    "The answer is 24. Let me double check th",
    "Answer: 24\nLet me verify this by",
    "Final Answer: The final answer is $24$. I hope",
])
def test_truncated_completion_with_a_committed_answer_passes(response):
    assert check(response, "24", finish_reason="length")["passed"] is True


def test_finish_reason_values():
    assert is_truncated("length") and is_truncated("LENGTH") and is_truncated("max_tokens")
    assert is_truncated("content_filter")
    assert not is_truncated(None) and not is_truncated("stop") and not is_truncated("eos")


def test_cut_off_tails():
    assert not cut_off("", "", one_sentence=True) and cut_off("", "", one_sentence=False)  # "... units digit $6$"
    assert not cut_off("", "", one_sentence=False, value_ends_sentence=True)  # display math, `$x = 5.$`
    assert not cut_off(" apples.", " apples.", one_sentence=False)
    assert not cut_off(" square units", " square units", one_sentence=True)
    assert cut_off(" square units", " square units", one_sentence=False)
    assert cut_off(". Then multiplying by", ". Then multiplying by", one_sentence=True)
    assert cut_off(" and then", " and then", one_sentence=True)


def test_public_api_takes_finish_reason():
    assert verify("The total is 24.", "24").passed
    assert verify("The total is 24.", "24", finish_reason="stop").passed
    truncated = verify("The total is 24.", "24", finish_reason="length")
    assert not truncated.passed and truncated.error is None and truncated.details["finish_reason"] == "length"
    assert asyncio.run(averify(ISSUE_EXAMPLE, "24", finish_reason="length")).passed is False


def test_verify_batch_passes_the_finish_reason_column():
    items = [{"response": "The total is 24.", "reference": "24", "finish_reason": reason}
             for reason in ("stop", "length", None)]
    verdicts = verify_batch(MathVerifier(), items, max_concurrency=2)
    assert [v.passed for v in verdicts] == [True, False, True]


@pytest.mark.parametrize("text", [
    "The total is 24" + " " * 20000 + "x", "The total is 24 " + "<|a|>" * 4000, "The total is 24" + ")" * 20000 + "x",
    "if " * 7000 + "24.", ("if a, " * 3500) + "24.", "It is 2. " * 2500 + "So 24", ". Answer:" * 2000 + " 24",
])
def test_long_hostile_texts_stay_linear(text):
    """The commit rule's scans are linear: a quadratic one took 170 s on the first of these at 50,000 characters."""
    started = time.perf_counter()
    check(text, "24")
    check(text, "24", finish_reason="length")
    assert time.perf_counter() - started < 5.0
