"""The one entry point: names, option validation before spending, required callables, uniform output."""

import pytest

from agents.llm.types import SamplingParams
from agents.workflows import WORKFLOWS, run_workflow, validate_options
from tests.test_workflow_fakes import ScriptedLLM


def test_every_workflow_is_registered_with_an_options_model():
    assert set(WORKFLOWS) == {"direct", "self_refine", "tool_use", "feedback"}
    assert validate_options("tool_use", {"mode": "fenced", "max_turns": 3}).max_turns == 3
    assert validate_options("feedback", None).max_attempts == 3


@pytest.mark.parametrize("name, options, key", [
    ("direct", {"temperature": 0.2}, "temperature"),
    ("tool_use", {"mode": "shell"}, "mode"),
    ("tool_use", {"max_turns": "many"}, "max_turns"),
    ("feedback", {"max_attempts": 0}, "max_attempts"),
])
def test_bad_options_name_the_key(name, options, key):
    with pytest.raises(ValueError, match=rf"{name}.*{key}"):
        validate_options(name, options)


def test_unknown_workflow_lists_the_known_ones():
    with pytest.raises(ValueError, match="self_refine"):
        validate_options("reflexion", {})


@pytest.mark.parametrize("name", sorted(WORKFLOWS))
async def test_every_workflow_returns_k_trajectories_with_consecutive_indices(name):
    llm = ScriptedLLM(lambda m, c: "VERDICT: CORRECT \\boxed{1}")
    out = await run_workflow(name, llm, "t9", "Say 1.", SamplingParams(), 3, first_index=5,
                             check=lambda answer: True, tool=lambda code: "")
    assert [t.sample_index for t in out] == [5, 6, 7]
    assert all(t.workflow == name and t.task_id == "t9" and t.error is None and t.stop_reason for t in out)
    assert all(t.messages[0] == {"role": "user", "content": "Say 1."} or name == "tool_use" for t in out)
    assert all(t.model_dump(mode="json")["final_answer"] for t in out)


async def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k must be"):
        await run_workflow("direct", ScriptedLLM(lambda m, c: "x"), "t", "p", SamplingParams(), 0)
