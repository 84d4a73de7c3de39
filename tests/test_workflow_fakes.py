"""A scripted fake `LLM` for the workflow tests (and tests of the fake itself).

`ScriptedLLM(respond)`: `respond(messages, call) -> reply | list[reply] | LLMError` where a reply is a
string (assistant text) or a message dict (e.g. with `tool_calls`); a list gives the n choices of an
`n > 1` request (one reply is repeated). Every request is recorded in `.calls`. Usage is deterministic:
10 prompt tokens per message, 5 completion tokens per choice. `metered(...)` wraps it in a MeteredLLM
with a MemoryCache and a ledger, as selfplay does.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from agents.llm.metered import MemoryCache, MeteredLLM
from agents.llm.types import ChatResult, Choice, LLMError, SamplingParams, Usage
from agents.money.ledger import BudgetLedger, Caps
from agents.money.prices import ModelPrice


@dataclass
class Call:
    messages: list[dict[str, Any]]
    params: SamplingParams
    tools: list[dict[str, Any]] | None
    sample_offset: int


@dataclass
class ScriptedLLM:
    respond: Callable[[list[dict[str, Any]], Call], Any]
    model: str = "fake-model"
    supports_n: bool = True
    calls: list[Call] = field(default_factory=list)

    async def chat(self, messages, params, *, tools=None, sample_offset=0) -> ChatResult:
        call = Call([dict(m) for m in messages], params, tools, sample_offset)
        self.calls.append(call)
        reply = self.respond(messages, call)
        if isinstance(reply, BaseException):
            raise reply
        replies = reply if isinstance(reply, list) else [reply] * params.n
        choices = [Choice(index=i, message=_message(r), finish_reason="tool_calls" if _message(r).get("tool_calls")
                          else "stop") for i, r in enumerate(replies[:params.n])]
        usage = Usage(prompt_tokens=10 * len(messages), completion_tokens=5 * len(choices))
        return ChatResult(model=self.model, choices=choices, usage=usage, cost_usd=0.001 * len(choices))

    async def aclose(self) -> None:
        pass


def _message(reply: Any) -> dict[str, Any]:
    if isinstance(reply, str):
        return {"role": "assistant", "content": reply}
    return {"role": "assistant", **reply}


def tool_call(code: str | None = None, *, id: str | None = "call_1", name: str = "python",
              arguments: str | None = None) -> dict[str, Any]:
    """An assistant message with one tool call (arguments as the raw JSON string the model wrote)."""
    import json
    args = arguments if arguments is not None else json.dumps({"code": code})
    call: dict[str, Any] = {"type": "function", "function": {"name": name, "arguments": args}}
    if id is not None:
        call["id"] = id
    return {"content": "", "tool_calls": [call]}


PRICE = ModelPrice(input=1000.0, output=2000.0)  # $1e-3 per prompt token: caps bite quickly


def metered(inner: Any, *, usd: float | None = None, cache: MemoryCache | None = None) -> MeteredLLM:
    return MeteredLLM(inner, price=PRICE, ledger=BudgetLedger(Caps(usd=usd)), cache=cache or MemoryCache())


def last_user(messages: list[dict[str, Any]]) -> str:
    return next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")


def run_python_subprocess(code: str) -> str:
    """The stand-in sandbox: `python -c code` in a subprocess, 10 s limit, stdout + stderr."""
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=10)
    return done.stdout + (f"[stderr]\n{done.stderr}" if done.stderr else "")


# The sandbox's warm workers die with the thread that started them (PR_SET_PDEATHSIG is per thread), and
# each test's event loop shuts its default executor's threads down: so the sandbox runs on threads that
# live as long as the test process.
_SANDBOX_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox")


def python_runner() -> tuple[str, Callable[[str], Any]]:
    """`verifiers.code`'s sandbox when it exists, else the subprocess stand-in; (name, async callable)."""
    try:
        from verifiers.code import run_python  # type: ignore[attr-defined]
    except ImportError:
        name, run = "subprocess", run_python_subprocess
    else:
        name, run = "verifiers.code", lambda code: run_python(code, timeout=10)

    async def in_sandbox_thread(code: str) -> Any:
        return await asyncio.wrap_future(_SANDBOX_THREADS.submit(run, code))

    return name, in_sandbox_thread


async def test_fake_returns_n_choices_and_records_calls():
    llm = ScriptedLLM(lambda messages, call: "hi")
    result = await llm.chat([{"role": "user", "content": "x"}], SamplingParams(n=3))
    assert [c.text for c in result.choices] == ["hi", "hi", "hi"]
    assert len(llm.calls) == 1 and llm.calls[0].params.n == 3


async def test_fake_raises_scripted_errors():
    llm = ScriptedLLM(lambda messages, call: LLMError("server_error", "boom"))
    try:
        await llm.chat([{"role": "user", "content": "x"}], SamplingParams())
    except LLMError as exc:
        assert exc.kind == "server_error"
    else:
        raise AssertionError("expected LLMError")
