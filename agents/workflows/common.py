"""Shared machinery of the workflows: turns, seeds, per-sample accounting, options and templates.

What it is for:
- `first_turn`: the K first answers of a batch in one `n=K` request (topped up by `sample_k`), each
  batch's requests keyed apart by its first sample index, so a later batch of the same task (adaptive
  K) is never served the earlier batch's replies from the cache;
- `next_turn`: one later turn of one sample: `n=1`, seed derived from (base seed, sample index, turn),
  `sample_offset` = sample index. Every request is therefore a pure function of the conversation so
  far, and a resumed trajectory replays its stored turns from the cache at $0;
- `Rollout`: the mutable state of one sample while it runs (messages, usage, cost, counts), turned
  into a `Trajectory` at the end;
- `CheckResult`, `maybe_await`, `parse_options`, `render`.
What it does NOT do: decide what a turn says (each workflow does), or catch anything but `LLMError`
(a `BudgetExceeded` is an `LLMError`: the workflows record it as error "budget", see `registry`).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Awaitable, Callable, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError

from agents.llm.base import LLM
from agents.llm.sampling import sample_k
from agents.llm.types import ChatResult, Choice, LLMError, Message, SamplingParams, Usage
from agents.workflows.trajectory import Trajectory

T = TypeVar("T")
OptionsT = TypeVar("OptionsT", bound=BaseModel)


@dataclass
class CheckResult:
    """What an injected check says about one answer. `error` is set only when the check itself failed."""

    passed: bool
    reason: str = ""
    error: str | None = None


def derive_seed(base: int | None, sample_index: int, turn: int) -> int | None:
    """A stable per-(sample, turn) seed; None stays None (the server samples freely)."""
    if base is None:
        return None
    digest = hashlib.sha256(f"{base}:{sample_index}:{turn}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1)


async def maybe_await(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a sync or async callable; a sync one runs in a worker thread (sandboxes and checks block)."""
    if inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None)):
        return await fn(*args)
    value = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(value):
        return await value
    return value


def parse_options(model: type[OptionsT], options: dict[str, Any] | None, workflow: str) -> OptionsT:
    """Validate a plain config dict; a bad or unknown key raises ValueError naming it."""
    try:
        return model.model_validate(options or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}"
                             for err in exc.errors())
        raise ValueError(f"workflow {workflow!r} options: {problems}") from None


def _compiles(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


def template_with(*placeholders: str) -> Any:
    """A `str` option type that must contain each `{placeholder}` (checked when options are parsed)."""
    def check(value: str) -> str:
        for name in placeholders:
            if "{" + name + "}" not in value:
                raise ValueError("must contain {" + name + "}")
        return value
    return Annotated[str, AfterValidator(check)]


Regex = Annotated[str, AfterValidator(_compiles)]  # a `str` option that must compile as a regular expression


def render(template: str, **fields: str) -> str:
    """Replace `{name}` for the given names only, in one pass (a value's own braces are never expanded);
    every other brace (LaTeX, code) is left alone."""
    if not fields:
        return template
    pattern = re.compile(r"\{(" + "|".join(re.escape(name) for name in fields) + r")\}")
    return pattern.sub(lambda match: fields[match.group(1)], template)


def last_user_text(messages: list[Message]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


@dataclass
class Rollout:
    """One sample in progress: everything a Trajectory records, accumulated turn by turn."""

    task_id: str
    sample_index: int
    workflow: str
    model: str
    messages: list[Message]
    prompt_messages: int
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    requests: int = 0
    cache_hits: int = 0
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    finish_reason: str | None = None
    error: str | None = None
    error_message: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    sampled: tuple[int, list[int] | None, list[float] | None] | None = None  # (message index, token ids, logprobs)

    @property
    def last_text(self) -> str:
        for message in reversed(self.messages[self.prompt_messages:]):
            if message.get("role") == "assistant" and message.get("content"):
                return str(message["content"])
        return ""

    def charge(self, result: ChatResult, share: int = 1, first: bool = True) -> None:
        """Add one result's usage and cost (split `share` ways when K samples shared the request)."""
        usage, mine = result.usage, self.usage
        self.usage = Usage(
            prompt_tokens=mine.prompt_tokens + usage.prompt_tokens // share,
            completion_tokens=mine.completion_tokens + usage.completion_tokens // share,
            cached_prompt_tokens=mine.cached_prompt_tokens + usage.cached_prompt_tokens // share,
            estimated=mine.estimated or usage.estimated)
        self.cost_usd += result.cost_usd / share
        if first:
            self.requests += result.requests
            self.cache_hits += int(result.cache_hit)

    def fail(self, exc: LLMError) -> None:
        self.error, self.error_message = exc.kind, exc.message[:500]

    def sampled_tail(self) -> tuple[list[int] | None, list[float] | None]:
        """The sampled token ids and log-probs of `messages[-1]`, when it is the assistant turn they came with."""
        if self.sampled is None or self.sampled[0] != len(self.messages) - 1 or not self.sampled[1]:
            return None, None
        return self.sampled[1], self.sampled[2]

    def to_trajectory(self, *, final_answer: str, steps: list[str], stop_reason: str) -> Trajectory:
        token_ids, logprobs = self.sampled_tail()
        return Trajectory(
            task_id=self.task_id, sample_index=self.sample_index, workflow=self.workflow, model=self.model,
            messages=self.messages, prompt_messages=self.prompt_messages, final_answer=final_answer,
            steps=steps, finish_reason=self.finish_reason, usage=self.usage, cost_usd=self.cost_usd,
            requests=self.requests, cache_hits=self.cache_hits, turns=self.turns, tool_calls=self.tool_calls,
            tool_errors=self.tool_errors, stop_reason="error" if self.error else stop_reason,
            error=self.error, error_message=self.error_message, metadata=self.metadata,
            completion_token_ids=token_ids, completion_logprobs=logprobs)


class _OffsetLLM:
    """Shifts `sample_offset` by a batch's first index, so batches of one prompt get distinct cache keys."""

    def __init__(self, llm: LLM, base: int) -> None:
        self._llm, self._base, self.model = llm, base, llm.model

    @property
    def supports_n(self) -> bool:
        return self._llm.supports_n

    @supports_n.setter
    def supports_n(self, value: bool) -> None:
        self._llm.supports_n = value

    @property
    def max_n(self) -> int | None:
        return getattr(self._llm, "max_n", None)

    @max_n.setter
    def max_n(self, value: int | None) -> None:  # a cap learned by sample_k outlives this per-batch wrapper
        self._llm.max_n = value

    async def chat(self, messages: list[Message], params: SamplingParams, *,
                   tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> ChatResult:
        return await self._llm.chat(messages, params, tools=tools, sample_offset=self._base + sample_offset)


async def first_turn(llm: LLM, workflow: str, task_id: str, messages: list[Message], params: SamplingParams,
                     k: int, first_index: int, *, tools: list[dict[str, Any]] | None = None) -> list[Rollout]:
    """K rollouts, each holding its first assistant reply; a failed request fails all K (error set)."""
    rollouts = [Rollout(task_id, first_index + i, workflow, llm.model, list(messages), len(messages))
                for i in range(k)]
    batch_params = params if first_index == 0 else params.with_(seed=derive_seed(params.seed, first_index, 0))
    try:
        results = await sample_k(_OffsetLLM(llm, first_index), messages, batch_params, k, tools=tools)
    except LLMError as exc:
        for rollout in rollouts:
            rollout.fail(exc)
        return rollouts
    for result in results:
        share = max(1, len(result.choices))
        for position, choice in enumerate(result.choices):
            rollout = rollouts[choice.index]
            rollout.charge(result, share, first=position == 0)
            _append_reply(rollout, choice)
    for rollout in rollouts:
        if rollout.turns == 0:
            rollout.fail(LLMError("malformed_reply", "the server returned fewer choices than asked"))
    return rollouts


async def next_turn(llm: LLM, rollout: Rollout, params: SamplingParams, *,
                    tools: list[dict[str, Any]] | None = None) -> Choice | None:
    """One more assistant turn for this sample (appended); None, with the error recorded, if it failed."""
    turn_params = params.with_(n=1, seed=derive_seed(params.seed, rollout.sample_index, rollout.turns))
    try:
        result = await llm.chat(rollout.messages, turn_params, tools=tools, sample_offset=rollout.sample_index)
        if not result.choices:
            raise LLMError("malformed_reply", "reply has no choices")
    except LLMError as exc:
        rollout.fail(exc)
        return None
    rollout.charge(result)
    choice = result.choices[0]
    _append_reply(rollout, choice)
    return choice


def _append_reply(rollout: Rollout, choice: Choice) -> None:
    message = dict(choice.message)
    message.setdefault("role", "assistant")
    rollout.messages.append(message)
    rollout.sampled = (len(rollout.messages) - 1, choice.token_ids, choice.logprobs)
    rollout.finish_reason = choice.finish_reason
    rollout.turns += 1


async def side_call(llm: LLM, rollout: Rollout, messages: list[Message], params: SamplingParams,
                    tag: str) -> str | None:
    """A request outside the sample's own conversation (a critic's), charged to the sample.

    Seeded and offset like a turn of this sample, with `tag` folded into the seed so it never
    collides with the sample's own turns. None, with the error recorded, if it failed.
    """
    seed = derive_seed(params.seed, rollout.sample_index, hash_tag(tag))
    try:
        result = await llm.chat(messages, params.with_(n=1, seed=seed), sample_offset=rollout.sample_index)
        if not result.choices:
            raise LLMError("malformed_reply", "reply has no choices")
    except LLMError as exc:
        rollout.fail(exc)
        return None
    rollout.charge(result)
    return result.choices[0].text


def hash_tag(tag: str) -> int:
    return int.from_bytes(hashlib.sha256(tag.encode()).digest()[:4], "big")


async def gather_rollouts(rollouts: list[Rollout], step: Callable[[Rollout], Awaitable[T]]) -> list[T]:
    """Run the rest of every rollout concurrently (failed ones included: `step` skips them)."""
    return list(await asyncio.gather(*(step(rollout) for rollout in rollouts)))
