"""The minimal LLM interface a judge (or an LLM-as-PRM) needs, and nothing more.

What it is for: `verifiers` imports nothing else of ours, so a judge cannot take an `agents` LLM directly.
It takes any object with a `model` name and one coroutine, `complete(...)`, that returns the assistant's
text (or, when `tools` were given and the model called one, that call's JSON arguments). `selfplay` adapts
an `agents` LLM (a `MeteredLLM`, so every judge call is priced and reserved in the budget) to this protocol;
a test can pass a ten-line fake.
An object may also say which structured-output modes its server supports, in `structured_modes`
(a tuple of "json_schema", "tools", "text"); without it, only "text" is assumed.
What it does not do: send anything itself, retry, price or cache (the adapted LLM does all of that).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

StructuredMode = Literal["json_schema", "tools", "text"]
MODE_PREFERENCE: tuple[StructuredMode, ...] = ("json_schema", "tools", "text")


@runtime_checkable
class JudgeLLM(Protocol):
    """A chat model a judge can ask one question at a time."""

    model: str

    async def complete(self, messages: list[dict[str, Any]], *, max_tokens: int, temperature: float,
                       response_format: dict[str, Any] | None = None,
                       tools: list[dict[str, Any]] | None = None) -> str: ...


def supported_modes(llm: Any) -> tuple[str, ...]:
    """The structured-output modes `llm` declares (always including plain "text")."""
    declared = tuple(getattr(llm, "structured_modes", ()) or ())
    return declared if "text" in declared else declared + ("text",)


def pick_mode(llm: Any, wanted: str = "auto") -> str:
    """`wanted` when it is a concrete mode, else the strictest mode the LLM supports."""
    if wanted != "auto":
        if wanted not in MODE_PREFERENCE:
            raise ValueError(f"unknown structured mode {wanted!r}: use auto, json_schema, tools or text")
        return wanted
    modes = supported_modes(llm)
    return next(mode for mode in MODE_PREFERENCE if mode in modes)


def run_blocking(coro: Any, loop: Any = None) -> Any:
    """Run a coroutine from synchronous code (e.g. a verifier called by `verify_batch` in a thread).

    With `loop` (the event loop the judge's LLM client lives on, running in another thread) the coroutine is
    submitted there and this thread waits; without it, a fresh loop runs it (`asyncio.run`): fine for
    clients that are not bound to a loop, and for scripts.
    """
    import asyncio

    if loop is not None:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()
    return asyncio.run(coro)
