"""The `local` backend: an HF `transformers` causal LM in this process (CPU, or GPU where present).

What it is for: the embedded default (the demo, the trainer's own policy between rounds, `selfplay serve`).
`chat` applies the tokenizer's chat template, parks the request in a micro-batcher, and the batch runs on one
worker thread through `local_sampling.generate_batch`: each distinct prompt is prefilled once and its KV cache
expanded to `n` rows, and all rows of all concurrent requests decode together. It returns the same
`ChatResult` as the `openai` backend (usage counted with the real tokenizer: the prompt once per request, as
OpenAI counts it for n > 1; completion tokens include the eos token that ended a sample), priced at
`hourly_usd x measured batch seconds`, split across the batch's requests by tokens (`hardware_cost`).
Seeds: row j of a call with `seed=s` samples from `Generator(s + j)`, whatever else shares its batch; this is
the convention of `sampling.sample_k`, whose top-up call for sample i carries `seed + i`, so a topped-up
sample equals the one an `n=K` call would have drawn (up to float noise of different batch shapes).
Each choice carries its sampled `token_ids` and their `logprobs` (see `Choice`), so training can use exactly
what was sampled instead of re-encoding the text.
`reload(...)` swaps in a new checkpoint, LoRA adapter or in-memory (model, tokenizer) between rounds.
What it does not do: parse tool calls (tools are passed to the chat template, the reply is plain text), stream,
download models, or price by a price table (use `MeteredLLM(..., price=None)`: the backend prices itself).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from agents.llm.batcher import Batcher
from agents.llm.hardware_cost import HardwareMeter
from agents.llm.local_loading import load_from_path, swap_weights
from agents.llm.local_sampling import GenOutput, GenRequest, generate_batch
from agents.llm.tokens import prompt_token_upper_bound
from agents.llm.types import ChatResult, Choice, LLMError, Message, SamplingParams, Usage


@dataclass
class _Done:
    output: GenOutput
    batch_seconds: float
    batch_tokens: int


class LocalBackend:
    """Chat completions from an in-process `transformers` model, batched across concurrent callers."""

    supports_n = True

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "local", hourly_usd: float = 0.0,
                 floor_tokens_per_second: float = 5.0, max_batch_rows: int = 256, batch_window_s: float = 0.005,
                 eos_token_ids: list[int] | None = None, seed: int | None = None) -> None:
        import torch

        self.model = name
        self.meter = HardwareMeter(hourly_usd, floor_tokens_per_second=floor_tokens_per_second)
        self._explicit_eos = eos_token_ids
        self._tokenizer_lock = threading.Lock()  # event loop encodes while the worker decodes
        self._net, self._tokenizer = model.eval(), tokenizer
        self._configure_tokens()
        self._unseeded = torch.Generator()
        self._unseeded.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(4), "little"))
        self._batcher: Batcher[GenRequest, _Done] = Batcher(
            self._run_batch, window_s=batch_window_s, max_rows=max_batch_rows, thread_name="selfplay-local")

    @classmethod
    def from_path(cls, path: str | os.PathLike, *, name: str | None = None, device: str | None = None,
                  dtype: Any = None, **kwargs: Any) -> "LocalBackend":
        """Load a local `save_pretrained` directory (or a LoRA adapter over a local base); never downloads."""
        model, tokenizer = load_from_path(path, device=device, dtype=dtype)
        return cls(model, tokenizer, name=name or str(path), **kwargs)

    @property
    def hf_model(self) -> Any:
        return self._net

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    async def chat(self, messages: list[Message], params: SamplingParams, *,
                   tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> ChatResult:
        """`params.n` samples of one prompt; `sample_offset` only names the call (seeds are `seed + row`)."""
        started = time.perf_counter()
        request = self._request(messages, params, tools)
        try:
            done, _info = await self._batcher.submit(request, rows=request.n)
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as data (kind server_error), not a crash of the job
            raise LLMError("server_error", f"local generation failed: {exc!r}", retryable=_is_oom(exc)) from exc
        return self._result(done, time.perf_counter() - started)

    async def complete(self, prompt: str, params: SamplingParams) -> ChatResult:
        """`params.n` continuations of the raw text `prompt` (no chat template): what `/v1/completions` serves."""
        started = time.perf_counter()
        with self._tokenizer_lock:
            prompt_ids = list(self._tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if not prompt_ids or self.max_context and len(prompt_ids) + params.max_tokens > self.max_context:
            raise LLMError("bad_request", f"prompt ({len(prompt_ids)} tokens) + max_tokens ({params.max_tokens}) "
                           f"is empty or exceeds the model's context of {self.max_context} tokens", status=400)
        request = GenRequest(prompt_ids=prompt_ids, n=params.n, max_tokens=params.max_tokens,
                             temperature=params.temperature, top_p=params.top_p, stop=list(params.stop or []),
                             seed=params.seed)
        try:
            done, _info = await self._batcher.submit(request, rows=request.n)
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported to the client as a server error
            raise LLMError("server_error", f"local generation failed: {exc!r}", retryable=_is_oom(exc)) from exc
        return self._result(done, time.perf_counter() - started)

    def worst_case_usd(self, messages: list[Message], params: SamplingParams) -> float:
        """Upper bound for the budget ledger (see `hardware_cost`): byte bound of the prompt + max_tokens x n."""
        return self.meter.worst_case_usd(prompt_token_upper_bound(messages) + params.max_tokens * params.n)

    async def reload(self, source: Any, *, name: str | None = None) -> None:
        """Serve new weights from the next batch on: a checkpoint dir, a LoRA adapter dir, or (model, tokenizer).

        Runs on the worker thread between batches, so no request sees half-swapped weights. `name` (if given)
        becomes `self.model`. A `MeteredLLM` copies the model name when built: build a new one per round so the
        request cache never serves the previous round's replies.
        """
        def swap() -> None:
            self._net, self._tokenizer = swap_weights(self._net, self._tokenizer, source)
            self._configure_tokens()

        await self._batcher.run_exclusive(swap)
        if name:
            self.model = name

    async def aclose(self) -> None:
        await asyncio.to_thread(self._batcher.close)

    # -- internals -------------------------------------------------------------------------------------------

    def _configure_tokens(self) -> None:
        self.eos_ids = set(self._explicit_eos) if self._explicit_eos is not None else _eos_ids(self._net, self._tokenizer)
        pad = self._tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0)
        self.max_context = _max_context(self._net)

    def _request(self, messages: list[Message], params: SamplingParams,
                 tools: list[dict[str, Any]] | None) -> GenRequest:
        prompt_ids = self.encode(messages, tools)
        if self.max_context and len(prompt_ids) + params.max_tokens > self.max_context:
            raise LLMError("bad_request", f"prompt ({len(prompt_ids)} tokens) + max_tokens ({params.max_tokens}) "
                           f"exceeds the model's context of {self.max_context} tokens", status=400)
        return GenRequest(prompt_ids=prompt_ids, n=params.n, max_tokens=params.max_tokens,
                          temperature=params.temperature, top_p=params.top_p, stop=list(params.stop or []),
                          seed=params.seed)

    def encode(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> list[int]:
        """Token ids of the chat-templated prompt, generation prompt included (what usage counts)."""
        if not messages:
            raise LLMError("bad_request", "messages is empty", status=400)
        with self._tokenizer_lock:
            try:
                text = self._tokenizer.apply_chat_template(messages, tools=tools, tokenize=False,
                                                           add_generation_prompt=True)
            except Exception as exc:  # noqa: BLE001 - a template that cannot render these messages
                raise LLMError("bad_request", f"chat template failed on these messages: {exc}", status=400) from exc
            return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, token_ids: list[int]) -> str:
        with self._tokenizer_lock:
            return self._tokenizer.decode(token_ids, skip_special_tokens=True)

    def _run_batch(self, requests: list[GenRequest]) -> list[_Done]:
        """Worker thread: one `generate_batch` over everything parked, timed for the hardware meter."""
        started = time.perf_counter()
        outputs = generate_batch(self._net, requests, eos_ids=self.eos_ids, pad_id=self.pad_id,
                                 decode=self.decode, fallback_generator=self._unseeded)
        seconds = time.perf_counter() - started
        tokens = sum(o.prompt_tokens + o.completion_tokens for o in outputs)
        self.meter.observe(seconds, tokens)
        return [_Done(o, seconds, tokens) for o in outputs]

    def _result(self, done: _Done, latency_s: float) -> ChatResult:
        out = done.output
        choices = [Choice(index=i, message={"role": "assistant", "content": row.text}, finish_reason=row.finish_reason,
                          token_ids=list(row.token_ids), logprobs=list(row.logprobs) or None)
                   for i, row in enumerate(out.rows)]
        usage = Usage(prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
                      cached_prompt_tokens=out.prompt_tokens if out.shared_prefill else 0)
        cost = self.meter.share_usd(done.batch_seconds, usage.total_tokens, done.batch_tokens)
        return ChatResult(model=self.model, choices=choices, usage=usage, cost_usd=cost, latency_s=latency_s)


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (configured, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def _is_oom(exc: BaseException) -> bool:
    return "out of memory" in str(exc).lower()


def _max_context(model: Any) -> int | None:
    config = getattr(model, "config", None)
    value = getattr(config, "max_position_embeddings", None)
    return int(value) if isinstance(value, int) and value > 0 else None
