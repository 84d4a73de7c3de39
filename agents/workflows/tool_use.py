"""The `tool_use` workflow: the model may run Python, sees the output, and answers when it is done.

What it is for: answers that lean on computation (arithmetic, search, checking a program on its own
examples). Modes:
- `tools`: the Python tool is offered as an OpenAI function (`tools=[...]`); each tool call's code runs
  through the injected `tool` callable and its output goes back as a `tool` message (id from the model;
  a deterministic `call_<turn>_<j>` only when the model gave none);
- `fenced`: no `tools` parameter; an instruction (merged into the system message) tells the model to
  write ```python blocks; a reply with such blocks and without the final-answer marker is run, and the
  output goes back as a user message (`observation_template`);
- `auto` (default): offers the tool and also runs fenced blocks; if the server refuses `tools` (HTTP 400
  on the first turn) the batch starts again in `fenced` mode.
A reply with nothing to run is the final answer. Malformed tool calls (not JSON, unknown function, no
code) and tools that raise become an error tool message plus `tool_errors` / `metadata["tool_error_log"]`,
and the model gets another turn. At `max_turns` assistant turns the trajectory stops with
`stop_reason="turn_limit"` and an empty final answer (it never gave one).
What it does NOT do: run code itself or sandbox anything (the caller injects `tool`: code -> text or a
result with stdout / stderr; sync tools run in a worker thread), or keep interpreter state between runs.
"""

from __future__ import annotations

import json
import re
from typing import Any, Awaitable, Callable, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from agents.llm.base import LLM
from agents.llm.types import Message, SamplingParams
from agents.workflows.common import Regex, Rollout, template_with, first_turn, gather_rollouts, maybe_await, next_turn, parse_options
from agents.workflows.steps import conversation_steps
from agents.workflows.toolcalls import (CodeRequest, fenced_code, observation, python_tool_schema, read_tool_call,
                                       tool_failure)
from agents.workflows.trajectory import Trajectory

NAME = "tool_use"
Tool = Callable[[str], Union[str, Any, Awaitable[Any]]]

FENCED_INSTRUCTION = """You can run Python code: write it in a ```python block and stop; its output will be \
shown to you in an ```output block. Print what you want to see. When you are done, give the final answer \
(for a math problem, as \\boxed{...})."""


class ToolUseOptions(BaseModel):
    """Options of `tool_use` (`[generate.workflow_options]`)."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["auto", "tools", "fenced"] = "auto"
    max_turns: int = Field(default=6, ge=1, le=50)
    tool_name: str = Field(default="python", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    tool_description: str = "Run a Python 3 program and return what it prints (stdout and stderr)."
    tools_instruction: str = ""                 # merged into the system message in tools / auto mode
    fenced_instruction: str = FENCED_INSTRUCTION  # merged into the system message in fenced mode
    observation_template: template_with("output") = "```output\n{output}\n```"
    final_pattern: Regex = r"\\boxed\{|(?i:final answer)"  # a reply matching it is final even with code
    code_languages: list[str] = Field(default_factory=lambda: ["python", "py", "python3"])
    max_observation_chars: int = Field(default=4000, ge=100)




async def run_tool_use(llm: LLM, task_id: str, messages: list[Message], params: SamplingParams, k: int, *,
                       tool: Tool | None = None, options: dict[str, Any] | None = None, first_index: int = 0,
                       **_unused: Any) -> list[Trajectory]:
    """K tool-using trajectories for one prompt."""
    opts = parse_options(ToolUseOptions, options, NAME)
    if tool is None:
        raise ValueError(f"workflow {NAME!r} needs a tool callable (code -> output)")
    mode = opts.mode
    rollouts = await _start(llm, task_id, messages, params, k, first_index, opts, mode)
    if mode == "auto" and rollouts and all(r.error == "bad_request" for r in rollouts):
        mode = "fenced"  # the server refused `tools`: start over with fenced code blocks
        rollouts = await _start(llm, task_id, messages, params, k, first_index, opts, mode)
        for rollout in rollouts:
            rollout.metadata["fell_back_to_fenced"] = True
    loop = _Loop(llm, tool, params, opts, mode)
    return await gather_rollouts(rollouts, loop.run)


async def _start(llm: LLM, task_id: str, messages: list[Message], params: SamplingParams, k: int,
                 first_index: int, opts: ToolUseOptions, mode: str) -> list[Rollout]:
    instruction = opts.fenced_instruction if mode == "fenced" else opts.tools_instruction
    prompt = with_instruction(messages, instruction)
    rollouts = await first_turn(llm, NAME, task_id, prompt, params, k, first_index, tools=_tools(opts, mode))
    for rollout in rollouts:
        rollout.metadata["mode"] = mode
    return rollouts


def with_instruction(messages: list[Message], instruction: str) -> list[Message]:
    """The prompt with `instruction` appended to its system message (or a new one in front)."""
    if not instruction:
        return list(messages)
    if messages and messages[0].get("role") == "system" and isinstance(messages[0].get("content"), str):
        merged = {**messages[0], "content": f"{messages[0]['content']}\n\n{instruction}"}
        return [merged, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def _tools(opts: ToolUseOptions, mode: str) -> list[dict[str, Any]] | None:
    return None if mode == "fenced" else [python_tool_schema(opts.tool_name, opts.tool_description)]


class _Loop:
    """The turn loop of one batch: run what the model asked for, answer, repeat."""

    def __init__(self, llm: LLM, tool: Tool, params: SamplingParams, opts: ToolUseOptions, mode: str) -> None:
        self.llm, self.tool, self.params, self.opts, self.mode = llm, tool, params, opts, mode
        self.tools = _tools(opts, mode)
        self.languages = tuple(lang.lower() for lang in opts.code_languages)

    async def run(self, rollout: Rollout) -> Trajectory:
        stop = "error" if rollout.error else await self._loop(rollout)
        last = rollout.messages[-1]
        final = str(last.get("content") or "") if stop == "final" else ""
        steps = conversation_steps(rollout.messages[rollout.prompt_messages:], self.opts.max_observation_chars)
        return rollout.to_trajectory(final_answer=final, steps=steps, stop_reason=stop)

    async def _loop(self, rollout: Rollout) -> str:
        while True:
            requests = self._requests(rollout)
            if not requests:
                return "final"
            if rollout.turns >= self.opts.max_turns:
                return "turn_limit"
            await self._answer(rollout, requests)
            if await next_turn(self.llm, rollout, self.params, tools=self.tools) is None:
                return "error"

    def _requests(self, rollout: Rollout) -> list[CodeRequest]:
        """What the last assistant message asks to run (tool calls first, else fenced code)."""
        message = rollout.messages[-1]
        calls = message.get("tool_calls")
        if calls and self.mode != "fenced":
            if not isinstance(calls, list):
                calls = [calls]
            requests = [read_tool_call(call, self.opts.tool_name, f"call_{rollout.turns}_{j}")
                        for j, call in enumerate(calls)]
            message["tool_calls"] = [_sendable(call, req.call_id) for call, req in zip(calls, requests)]
            return requests
        text = str(message.get("content") or "")
        if self.mode == "tools" or re.search(self.opts.final_pattern, text):
            return []
        code = fenced_code(text, self.languages)
        return [CodeRequest(None, code)] if code is not None else []

    async def _answer(self, rollout: Rollout, requests: list[CodeRequest]) -> None:
        outputs = [await self._run_one(rollout, request) for request in requests]
        if requests[0].call_id is None:  # fenced code: the output comes back as a user turn
            rollout.messages.append({"role": "user",
                                     "content": self.opts.observation_template.replace("{output}", outputs[0])})
            return
        for request, output in zip(requests, outputs):
            rollout.messages.append({"role": "tool", "tool_call_id": request.call_id, "content": output})

    async def _run_one(self, rollout: Rollout, request: CodeRequest) -> str:
        rollout.tool_calls += 1
        error = request.error
        if error is None:
            try:
                value = await maybe_await(self.tool, request.code)
            except Exception as exc:  # noqa: BLE001 - a failing tool is recorded, not a crash
                error = f"the tool failed: {type(exc).__name__}: {str(exc)[:300]}"
            else:
                error = tool_failure(value)
                if error is None:
                    return observation(value, self.opts.max_observation_chars)
        rollout.tool_errors += 1
        rollout.metadata.setdefault("tool_error_log", []).append(
            {"turn": rollout.turns, "call_id": request.call_id, "error": error})
        return f"error: {error}"


def _sendable(call: Any, call_id: str | None) -> dict[str, Any]:
    """The call as the model sent it, made safe to send back: an id filled in when it had none (tool
    messages need one), a function with a string name, and arguments that are not JSON wrapped as
    `{"unparsed_arguments": raw}` (servers such as vLLM parse them when rendering the conversation)."""
    if not isinstance(call, dict):
        return {"id": call_id, "type": "function",
                "function": {"name": "invalid", "arguments": json.dumps({"unparsed_call": str(call)[:2000]})}}
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    name = function.get("name") if isinstance(function.get("name"), str) and function.get("name") else "invalid"
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments if arguments is not None else {})
    elif arguments.strip():
        try:
            json.loads(arguments)
        except ValueError:
            arguments = json.dumps({"unparsed_arguments": arguments})
    return {**call, "id": call_id, "type": call.get("type") or "function",
            "function": {**function, "name": name, "arguments": arguments}}
