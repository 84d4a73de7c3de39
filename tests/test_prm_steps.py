"""The PRM's copy of the step rule gives exactly the segmentation the agents' trajectories record."""

import pytest

from agents.workflows import steps as agent_steps
from verifiers.prm import steps as prm_steps

TEXTS = [
    "",
    "   ",
    "One line only.",
    "First line\nsecond line\n\nthird paragraph",
    "Para one.\n\nPara two.\n\n\nPara three.",
    "Step 1: add 2 and 3.\nStep 2: that gives 5.\nSo the answer is \\boxed{5}.",
    "Let me think.\n1. Compute 6*7 = 42.\n2) Check: 42/7 = 6.\n3. Done: \\boxed{42}",
    "We know x = 3.\n1. Only one numbered step here.\n\nAnd a paragraph.",
    "step 1. lower case\nSTEP 2) upper case",
    "a || b || c",
    "no blank lines\njust\nlines",
]
SEPARATORS = [None, "||", "\n"]


@pytest.mark.parametrize("separator", SEPARATORS)
@pytest.mark.parametrize("text", TEXTS)
def test_split_steps_is_the_same_rule(text, separator):
    assert prm_steps.split_steps(text, separator) == agent_steps.split_steps(text, separator)


def test_conversation_steps_are_the_same_rule():
    messages = [
        {"role": "assistant", "content": "Let me compute.\n\nI will use Python.",
         "tool_calls": [{"id": "c1", "function": {"name": "python", "arguments": '{"code": "print(6*7)"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "42"},
        {"role": "assistant", "content": "1. The tool says 42.\n2. So \\boxed{42}."},
        {"role": "user", "content": "Output of the fenced block: 1"},
    ]
    got = prm_steps.conversation_steps(messages)
    assert got == agent_steps.conversation_steps(messages)
    assert len(got) == 6 and got[2].startswith("```python\nprint(6*7)")
