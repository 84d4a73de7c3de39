"""`self_refine`: draft -> critique -> revise, stopping when the critic accepts; options validated."""

import pytest

from agents.llm.types import LLMError, SamplingParams
from agents.workflows import run_workflow
from tests.test_workflow_fakes import ScriptedLLM, last_user, metered

PROMPT = [{"role": "user", "content": "Compute 3*4 and box it."}]


def script(messages, call):
    """Draft is wrong; the critic rejects 11 and accepts 12; the revision says 12."""
    text = last_user(messages)
    if text.startswith("Review the following answer"):
        return "VERDICT: CORRECT" if "\\boxed{12}" in text else "3*4 is 12, not 11.\nVERDICT: INCORRECT"
    if text.startswith("A reviewer checked"):
        return "Step 1: 3*4 = 12.\nStep 2: \\boxed{12}"
    return "\\boxed{11}"


async def test_revises_until_the_critic_accepts():
    llm = ScriptedLLM(script)
    out = await run_workflow("self_refine", llm, "t1", PROMPT, SamplingParams(seed=3), 2)
    for t in out:
        assert t.stop_reason == "accepted" and t.error is None
        assert t.final_answer == "Step 1: 3*4 = 12.\nStep 2: \\boxed{12}"
        assert t.steps == ["Step 1: 3*4 = 12.", "Step 2: \\boxed{12}"]
        roles = [m["role"] for m in t.messages]
        assert roles == ["user", "assistant", "user", "assistant"]
        assert "3*4 is 12, not 11." in t.messages[2]["content"]      # the critique reached the policy
        assert [c["accepted"] for c in t.metadata["critiques"]] == [False, True]
        assert t.turns == 2
    # 1 shared draft request + per sample: 2 critiques + 1 revision
    assert len(llm.calls) == 1 + 2 * 3 == sum(t.requests for t in out)   # each request counted once
    critic_calls = [c for c in llm.calls if last_user(c.messages).startswith("Review")]
    assert all(c.params.temperature == 0.0 and c.params.n == 1 for c in critic_calls)
    assert len({(c.sample_offset, c.params.seed) for c in llm.calls[1:]}) == 6   # every turn seeded apart


async def test_identical_samples_without_a_seed_still_get_their_own_turns_not_a_cache_hit():
    inner = ScriptedLLM(script)
    llm = metered(inner)
    out = await run_workflow("self_refine", llm, "t1", PROMPT, SamplingParams(seed=None), 3)
    assert llm.cache_hits == 0 and len(inner.calls) == 1 + 3 * 3
    assert sorted(c.sample_offset for c in inner.calls[1:]) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all(t.stop_reason == "accepted" for t in out)


async def test_stops_after_max_rounds_and_uses_a_separate_critic():
    policy = ScriptedLLM(lambda m, c: "\\boxed{11}")
    critic = ScriptedLLM(lambda m, c: "Wrong. VERDICT: INCORRECT", model="critic")
    out = await run_workflow("self_refine", policy, "t1", PROMPT, SamplingParams(), 1,
                             options={"max_rounds": 3, "critic_model": "critic"}, critic_llm=critic)
    assert out[0].stop_reason == "max_rounds" and out[0].turns == 4
    assert len(critic.calls) == 3 and len(policy.calls) == 4
    assert out[0].metadata["critiques"][0]["model"] == "critic"


async def test_custom_templates_keep_latex_braces():
    llm = ScriptedLLM(lambda m, c: "VERDICT: CORRECT" if "Judge" in last_user(m) else "\\boxed{4}")
    options = {"critique_template": "Judge \\frac{a}{b}: {answer} for {question}"}
    out = await run_workflow("self_refine", llm, "t1", PROMPT, SamplingParams(), 1, options=options)
    critic_prompt = out[0].metadata["critiques"][0]["messages"][0]["content"]
    assert critic_prompt == "Judge \\frac{a}{b}: \\boxed{4} for Compute 3*4 and box it."
    assert out[0].stop_reason == "accepted" and out[0].turns == 1


async def test_a_failed_critic_request_ends_the_trajectory_and_keeps_its_messages():
    def flaky(messages, call):
        return LLMError("timeout", "took too long") if "Review" in last_user(messages) else "\\boxed{1}"
    out = await run_workflow("self_refine", ScriptedLLM(flaky), "t1", PROMPT, SamplingParams(), 2)
    assert [t.error for t in out] == ["timeout", "timeout"]
    assert all(t.stop_reason == "error" and len(t.messages) == 2 and t.final_answer == "\\boxed{1}" for t in out)


@pytest.mark.parametrize("options, key", [
    ({"max_round": 2}, "max_round"),
    ({"max_rounds": 0}, "max_rounds"),
    ({"revise_template": "no placeholder"}, "revise_template"),
    ({"accept_pattern": "(unclosed"}, "accept_pattern"),
])
async def test_bad_options_raise_value_error_naming_the_key(options, key):
    llm = ScriptedLLM(lambda m, c: "x")
    with pytest.raises(ValueError, match=key):
        await run_workflow("self_refine", llm, "t1", PROMPT, SamplingParams(), 1, options=options)
    assert llm.calls == []


async def test_critic_model_without_critic_llm_is_refused():
    with pytest.raises(ValueError, match="critic_llm"):
        await run_workflow("self_refine", ScriptedLLM(lambda m, c: "x"), "t1", PROMPT, SamplingParams(), 1,
                           options={"critic_model": "gpt-judge"})
