"""`tool_use`: tool calls really run, outputs go back, malformed calls become recorded errors."""

import json

import pytest

from agents.llm.types import LLMError, SamplingParams
from agents.workflows import run_workflow
from tests.test_workflow_fakes import ScriptedLLM, python_runner, tool_call

PROMPT = [{"role": "system", "content": "You are careful."}, {"role": "user", "content": "What is 6*7?"}]


def turn(messages):
    return sum(m["role"] == "assistant" for m in messages)


async def test_a_tool_call_really_runs_and_its_output_goes_back():
    runner_name, runner = python_runner()

    def script(messages, call):
        if turn(messages) == 0:
            return tool_call("print(6*7)", id="call_abc")
        return f"The program printed {messages[-1]['content'].strip()}, so \\boxed{{42}}"

    llm = ScriptedLLM(script)
    out = await run_workflow("tool_use", llm, "t1", PROMPT, SamplingParams(seed=1), 2, tool=runner)
    for t in out:
        assert t.error is None and t.stop_reason == "final" and t.tool_calls == 1 and t.tool_errors == 0
        tool_message = t.messages[3]
        assert tool_message == {"role": "tool", "tool_call_id": "call_abc", "content": tool_message["content"]}
        assert tool_message["content"].strip() == "42", runner_name
        assert t.final_answer == "The program printed 42, so \\boxed{42}"
        assert t.steps[0] == "```python\nprint(6*7)\n```\nOutput:\n42\n"
        assert t.turns == 2
    assert llm.calls[0].tools[0]["function"]["name"] == "python"      # offered as an OpenAI function
    assert all(c.tools for c in llm.calls)


@pytest.mark.parametrize("bad, error", [
    (tool_call(arguments='{"code": "print(1)'), "not valid JSON"),
    (tool_call("print(1)", name="bash"), "unknown tool 'bash'"),
    (tool_call(arguments='{"source": "print(1)"}'), "no 'code'"),
    (tool_call(arguments='[1, 2]'), "JSON object"),
    ({"content": "", "tool_calls": [{"id": "c9", "type": "function"}]}, "no function"),
])
async def test_malformed_tool_calls_become_recorded_errors(bad, error):
    ran = []

    def script(messages, call):
        return bad if turn(messages) == 0 else "I give up: \\boxed{0}"

    out = await run_workflow("tool_use", ScriptedLLM(script), "t1", PROMPT, SamplingParams(), 1,
                             tool=lambda code: ran.append(code) or "ran")
    t = out[0]
    assert ran == [] and t.error is None and t.stop_reason == "final"
    assert t.tool_calls == 1 and t.tool_errors == 1
    assert t.messages[3]["role"] == "tool" and t.messages[3]["content"].startswith("error: ")
    assert error in t.messages[3]["content"] and error in t.metadata["tool_error_log"][0]["error"]
    for call in t.messages[2]["tool_calls"]:          # what we send back parses, and has an id
        json.loads(call["function"].get("arguments") or "{}")
        assert call["id"]


async def test_a_missing_call_id_gets_a_deterministic_one_and_a_raising_tool_is_recorded():
    def script(messages, call):
        return tool_call("1/0", id=None) if turn(messages) == 0 else "done \\boxed{1}"

    def broken_tool(code):
        raise RuntimeError("sandbox unavailable")

    t = (await run_workflow("tool_use", ScriptedLLM(script), "t1", PROMPT, SamplingParams(), 1, tool=broken_tool))[0]
    assert t.messages[2]["tool_calls"][0]["id"] == "call_1_0" == t.messages[3]["tool_call_id"]
    assert "RuntimeError: sandbox unavailable" in t.messages[3]["content"] and t.tool_errors == 1


async def test_fenced_mode_runs_code_blocks_and_returns_output_as_a_user_turn():
    seen = []

    def script(messages, call):
        if turn(messages) == 0:
            return "Let me compute.\n```python\nprint(6*7)\n```"
        return "So the answer is \\boxed{42}."

    async def tool(code):
        seen.append(code)
        return "42\n"

    llm = ScriptedLLM(script)
    t = (await run_workflow("tool_use", llm, "t1", PROMPT, SamplingParams(), 1, tool=tool,
                            options={"mode": "fenced"}))[0]
    assert seen == ["print(6*7)"] and llm.calls[0].tools is None
    assert "```python block" in t.messages[0]["content"] and t.messages[0]["content"].startswith("You are careful.")
    assert t.messages[3] == {"role": "user", "content": "```output\n42\n\n```"}
    assert t.final_answer == "So the answer is \\boxed{42}." and t.tool_calls == 1
    assert t.steps == ["Let me compute.", "```python\nprint(6*7)\n```", "Output:\n```output\n42\n\n```",
                       "So the answer is \\boxed{42}."]


async def test_auto_mode_falls_back_to_fenced_when_the_server_refuses_tools():
    def script(messages, call):
        if call.tools:
            return LLMError("bad_request", "HTTP 400: tools are not supported")
        return "```python\nprint(1)\n```" if turn(messages) == 0 else "\\boxed{1}"

    out = await run_workflow("tool_use", ScriptedLLM(script), "t1", PROMPT, SamplingParams(), 2, tool=lambda c: "1")
    assert all(t.error is None and t.metadata["mode"] == "fenced" and t.metadata["fell_back_to_fenced"] for t in out)
    assert all(t.final_answer == "\\boxed{1}" for t in out)


async def test_turn_limit_stops_a_model_that_never_answers():
    llm = ScriptedLLM(lambda m, c: tool_call("print(1)", id=f"c{turn(m)}"))
    t = (await run_workflow("tool_use", llm, "t1", PROMPT, SamplingParams(), 1, tool=lambda c: "1",
                            options={"max_turns": 3}))[0]
    assert t.stop_reason == "turn_limit" and t.turns == 3 and t.final_answer == "" and t.error is None
    assert len(llm.calls) == 3 and t.tool_calls == 2


async def test_tool_use_needs_a_tool():
    with pytest.raises(ValueError, match="tool"):
        await run_workflow("tool_use", ScriptedLLM(lambda m, c: "x"), "t1", PROMPT, SamplingParams(), 1)


async def test_sandbox_results_are_formatted_and_a_sandbox_failure_is_a_tool_error():
    from dataclasses import dataclass

    @dataclass
    class Result:
        stdout: str = ""
        stderr: str = ""
        exit_code: int | None = 0
        timed_out: bool = False
        error: str | None = None

    results = iter([Result(stdout="1\n", stderr="Traceback...", exit_code=1), Result(error="pool down")])

    def script(messages, call):
        n = turn(messages)
        return tool_call("x", id=f"c{n}") if n < 2 else "\\boxed{1}"

    t = (await run_workflow("tool_use", ScriptedLLM(script), "t1", PROMPT, SamplingParams(), 1,
                            tool=lambda code: next(results)))[0]
    tool_messages = [m["content"] for m in t.messages if m["role"] == "tool"]
    assert tool_messages[0] == "1\n\n[stderr]\nTraceback...\n[exit code 1]"
    assert tool_messages[1] == "error: the sandbox failed: pool down" and t.tool_errors == 1
