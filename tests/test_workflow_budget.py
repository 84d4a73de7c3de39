"""Multi-turn workflows on a MeteredLLM: every turn reserved before it is sent; resume pays nothing twice."""

import pytest

from agents.llm.metered import MemoryCache
from agents.llm.types import SamplingParams
from agents.workflows import budget_exhausted, run_workflow
from tests.test_workflow_fakes import ScriptedLLM, last_user, metered, tool_call

PROMPT = [{"role": "user", "content": "What is 6*7?"}]
PARAMS = SamplingParams(max_tokens=10, seed=9)


class Killed(Exception):
    """Stands for the process dying mid-trajectory."""


def turns(messages):
    return sum(m["role"] == "assistant" for m in messages)


def refine_script(messages, call):
    text = last_user(messages)
    if text.startswith("Review"):
        return "VERDICT: CORRECT" if "42" in text else "Off by one. VERDICT: INCORRECT"
    return f"\\boxed{{{40 + turns(messages)}}}"          # 40, then 41, then 42


def tool_script(messages, call):
    n = turns(messages)
    return tool_call(f"print({n} + 40)", id=f"c{n}") if n < 2 else f"\\boxed{{{messages[-1]['content'].strip()}}}"


async def run(name, llm, k=2):
    extra = {"tool": lambda code: str(eval(code[6:-1]))} if name == "tool_use" else {}
    return await run_workflow(name, llm, "t1", PROMPT, PARAMS, k, options={"max_rounds": 3} if name == "self_refine"
                              else None, **extra)


@pytest.mark.parametrize("cap", [0.05, 0.2, 0.5, 1.0, 2.0, 4.0])
@pytest.mark.parametrize("name, script", [("self_refine", refine_script), ("tool_use", tool_script)])
async def test_the_cap_holds_across_turns_and_refusals_are_recorded(name, script, cap):
    inner = ScriptedLLM(script)
    llm = metered(inner, usd=cap)
    out = await run(name, llm)
    totals = llm.ledger.totals
    assert totals.spent_usd <= cap + 1e-9 and llm.ledger.committed_usd() <= cap + 1e-9
    assert totals.requests == len(inner.calls)                 # nothing was sent without a reservation
    refused = [t for t in out if t.error == "budget"]
    assert budget_exhausted(out) == bool(refused)
    for t in refused:                                          # the trajectory so far is kept
        assert t.stop_reason == "error" and t.messages[:1] == PROMPT and "cap" in t.error_message
    if cap == 0.5:                                             # refused mid-trajectory, after a paid turn
        assert refused and all(t.turns >= 1 for t in refused)
    if cap >= 4.0:
        assert not refused and all(t.error is None for t in out)
    if cap <= 0.05:
        assert len(refused) == 2 and inner.calls == []


@pytest.mark.parametrize("name, script", [("self_refine", refine_script), ("tool_use", tool_script)])
async def test_a_killed_run_resumes_from_the_cache_without_paying_twice(name, script):
    reference_inner = ScriptedLLM(script)
    reference = await run(name, metered(reference_inner))
    total = len(reference_inner.calls)
    assert total >= 5

    cache = MemoryCache()
    killed_at = total // 2

    def dies_midway(messages, call):
        if len(dying.calls) > killed_at:
            raise Killed("kill -9")                      # not an LLMError: the process is gone
        return script(messages, call)

    dying = ScriptedLLM(dies_midway)
    with pytest.raises(Killed):
        await run(name, metered(dying, cache=cache))
    paid_before = len(cache.entries)
    assert 0 < paid_before <= killed_at

    resumed_inner = ScriptedLLM(script)
    resumed_llm = metered(resumed_inner, cache=cache)
    resumed = await run(name, resumed_llm)
    assert len(resumed_inner.calls) == total - paid_before           # only the turns never paid for
    assert resumed_llm.cache_hits == paid_before
    strip = lambda ts: [(t.messages, t.final_answer, t.stop_reason) for t in ts]  # noqa: E731
    assert strip(resumed) == strip(reference)

    again_inner = ScriptedLLM(script)
    again = await run(name, metered(again_inner, cache=cache))
    assert again_inner.calls == [] and sum(t.cost_usd for t in again) == 0 and strip(again) == strip(reference)
