"""Every workflow end to end against the mock OpenAI server: scripted multi-turn conversations over HTTP,
a tool call whose code really runs in the code sandbox (`verifiers.code`), malformed tool calls from the
model, and a rerun served entirely from the cache (the server sees no new request)."""

import re

import pytest

from agents.llm.metered import MemoryCache
from agents.llm.openai_backend import OpenAIBackend
from agents.llm.retry import RetryPolicy
from agents.llm.types import SamplingParams
from agents.workflows import CheckResult, run_workflow
from selfplay.servers.testing import MockServer
from tests.test_workflow_fakes import metered, python_runner

SCRIPT = {"models": ["policy", "critic"], "rules": [
    # tool_use: a real program, then an answer that reads its output
    {"name": "run-code", "match": r"Compute (\d+) \* (\d+) with python", "turn": 0,
     "reply": {"content": "", "tool_calls": [{"name": "python", "arguments": {"code": "print({1} * {2})"}}]}},
    {"name": "use-output", "role": "tool", "tool_result": r"^(?P<v>-?\d+)\s*$",
     "reply": r"The program printed {v}, so \boxed{{v}}."},
    # tool_use: malformed calls (bad JSON, unknown tool), then a plain answer after the error
    {"name": "bad-json", "contains": "Use broken tools", "turn": 0,
     "reply": {"content": "", "tool_calls": [{"name": "python", "arguments": '{"code": "print(1)'},
                                             {"name": "bash", "arguments": {"cmd": "ls"}}]}},
    {"name": "after-error", "role": "tool", "tool_result": "^error: ", "reply": r"Tools failed; \boxed{7}"},
    # self_refine: the critic (its own model) rejects 11 and accepts anything else
    {"name": "critic-rejects", "model": "critic", "match": r"\\boxed\{11\}", "reply": "Wrong. VERDICT: INCORRECT"},
    {"name": "critic-accepts", "model": "critic", "reply": "Fine. VERDICT: CORRECT"},
    {"name": "revise", "contains": "A reviewer checked your answer", "reply": r"Fixed: 3 * 4 = 12, \boxed{12}"},
    # feedback: wrong first, right after the checker's reason
    {"name": "retry", "contains": "not accepted", "first_user": r"What is (?P<a>\d+) - (?P<b>\d+)",
     "reply": r"Subtracting: \boxed{{sub:a,b}}"},
    {"name": "first-try", "match": r"What is (\d+) - (\d+)", "turn": 0, "reply": r"\boxed{{add:1,2}}"},
    {"name": "draft", "contains": "Compute 3*4", "reply": r"\boxed{11}"},
    {"name": "add-k", "match": r"What is (\d+) \+ (\d+)", "pick": "cycle",
     "replies": [r"\boxed{{add:1,2}}", r"\boxed{{mul:1,2}}"]},
]}
PARAMS = SamplingParams(max_tokens=64, seed=3)


@pytest.fixture(scope="module")
def server():
    with MockServer(SCRIPT) as running:
        yield running


def llm(server, model="policy", cache=None):
    backend = OpenAIBackend(model, base_url=server.base_url, retry=RetryPolicy(max_attempts=2))
    return metered(backend, cache=cache)


def boxed(text):
    found = re.findall(r"\\boxed\{([^}]*)\}", text)
    return found[-1] if found else None


async def test_direct_over_http(server):
    out = await run_workflow("direct", llm(server), "add", "What is 3 + 4?", PARAMS, 4)
    assert [boxed(t.final_answer) for t in out] == ["7", "12", "7", "12"]
    assert sum(t.requests for t in out) == 1 and all(t.usage.completion_tokens > 0 for t in out)


async def test_tool_use_runs_the_models_code_in_the_sandbox(server):
    runner_name, runner = python_runner()
    assert runner_name == "verifiers.code"
    out = await run_workflow("tool_use", llm(server), "mul", "Compute 6 * 7 with python.", PARAMS, 2, tool=runner)
    for t in out:
        assert t.error is None and t.stop_reason == "final" and boxed(t.final_answer) == "42"
        call = t.messages[1]["tool_calls"][0]
        assert t.messages[2] == {"role": "tool", "tool_call_id": call["id"], "content": "42\n"}
        assert call["id"].startswith("call_")                     # the server's id, kept
        assert t.tool_calls == 1 and t.turns == 2


async def test_tool_use_records_malformed_calls_from_the_server(server):
    t = (await run_workflow("tool_use", llm(server), "bad", "Use broken tools.", PARAMS, 1,
                            tool=lambda code: "never called"))[0]
    assert t.error is None and t.final_answer == r"Tools failed; \boxed{7}"
    assert t.tool_calls == 2 and t.tool_errors == 2
    errors = [m["content"] for m in t.messages if m["role"] == "tool"]
    assert "not valid JSON" in errors[0] and "unknown tool 'bash'" in errors[1]


async def test_self_refine_with_a_critic_model(server):
    out = await run_workflow("self_refine", llm(server), "ref", "Compute 3*4.", PARAMS, 2,
                             options={"critic_model": "critic"}, critic_llm=llm(server, "critic"))
    for t in out:
        assert t.stop_reason == "accepted" and boxed(t.final_answer) == "12"
        assert [c["accepted"] for c in t.metadata["critiques"]] == [False, True]


async def test_feedback_and_a_rerun_paid_from_the_cache(server):
    def check(answer):
        return CheckResult(passed=boxed(answer) == "6", reason=f"{boxed(answer)} is incorrect")

    cache = MemoryCache()
    first = await run_workflow("feedback", llm(server, cache=cache), "sub", "What is 9 - 3?", PARAMS, 2, check=check)
    assert [t.stop_reason for t in first] == ["passed", "passed"] and boxed(first[0].final_answer) == "6"
    before = server.stats()
    rerun_llm = llm(server, cache=cache)
    again = await run_workflow("feedback", rerun_llm, "sub", "What is 9 - 3?", PARAMS, 2, check=check)
    assert server.stats() == before and rerun_llm.ledger.totals.requests == 0
    assert [t.messages for t in again] == [t.messages for t in first]
