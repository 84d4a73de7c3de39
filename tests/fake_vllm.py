"""A FAKE of the few `vllm` names the `vllm` backend uses: `LLM`, `SamplingParams`, `LoRARequest` (+ outputs).

THIS IS NOT vLLM. vLLM cannot be installed on the test machine (no GPU), so the backend's own logic (engine
arguments, one `generate` call per batch, per-prompt `SamplingParams(n=K, seed, ...)`, token-id prompts, LoRA
requests with fresh ids after each reload, mapping of outputs to usage and choices, isolating a bad prompt) is
tested against this stand-in, injected with `VLLMBackend(..., api=fake_api())`. The package never imports it.
It mimics the documented shapes only: `LLM(model=..., **engine_args)`, `LLM.get_tokenizer()`,
`LLM.generate(prompts, sampling_params, *, lora_request=None, use_tqdm=True) -> list[RequestOutput]`,
`RequestOutput(prompt_token_ids, outputs=[CompletionOutput(index, text, token_ids, finish_reason)],
num_cached_tokens)`. Its "generation" is a deterministic string naming the adapter, seed and sample index; it
raises ValueError for a prompt longer than `max_model_len`, as vLLM does.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from trainer.tiny import build_tiny_tokenizer

_TOKENIZER = None


def _tokenizer():
    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = build_tiny_tokenizer()
    return _TOKENIZER


@dataclass
class FakeSamplingParams:
    """Same keyword names as vllm.SamplingParams for the fields the backend sets (unknown ones: TypeError)."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int | None = 16
    stop: list[str] | None = None
    seed: int | None = None
    logprobs: int | None = None  # the backend asks for the sampled token's log-prob (0); the fake sends none


@dataclass
class FakeLoRARequest:
    lora_name: str
    lora_int_id: int
    lora_path: str


@dataclass
class FakeCompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None
    cumulative_logprob: float | None = None


@dataclass
class FakeRequestOutput:
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[FakeCompletionOutput]
    num_cached_tokens: int = 0
    finished: bool = True


@dataclass
class FakeLLM:
    """Records how it was built and every generate call."""

    model: str
    engine_args: dict[str, Any] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    seen_prompts: set[tuple[int, ...]] = field(default_factory=set)
    max_model_len: int = 512

    def get_tokenizer(self):
        return _tokenizer()

    def generate(self, prompts, sampling_params=None, *, lora_request=None, use_tqdm=True, **_ignored):
        prompts = list(prompts)
        params = sampling_params if isinstance(sampling_params, list) else [sampling_params] * len(prompts)
        loras = lora_request if isinstance(lora_request, list) else [lora_request] * len(prompts)
        if len(params) != len(prompts) or len(loras) != len(prompts):
            raise ValueError("the lengths of prompts, sampling_params and lora_request must match")
        self.calls.append({"prompts": prompts, "sampling_params": params, "lora_request": loras})
        return [self._one(i, p, sp, lr) for i, (p, sp, lr) in enumerate(zip(prompts, params, loras))]

    def _one(self, i: int, prompt: dict, params: FakeSamplingParams, lora: FakeLoRARequest | None):
        ids = list(prompt["prompt_token_ids"])
        if len(ids) + (params.max_tokens or 0) > self.max_model_len:
            raise ValueError(f"The decoder prompt (length {len(ids)}) is longer than the maximum model length "
                             f"of {self.max_model_len}.")
        cached = (len(ids) // 16) * 16 if tuple(ids) in self.seen_prompts else 0
        self.seen_prompts.add(tuple(ids))
        rng = random.Random(params.seed) if params.seed is not None else random.Random()
        draw = rng.randrange(10**6)
        adapter = lora.lora_name if lora else "base"
        outputs = [self._sample(f"{adapter}|{draw}|{j}|the end", j, params) for j in range(params.n)]
        return FakeRequestOutput(request_id=str(i), prompt_token_ids=ids, outputs=outputs, num_cached_tokens=cached)

    def _sample(self, text: str, index: int, params: FakeSamplingParams) -> FakeCompletionOutput:
        tokenizer = _tokenizer()
        for stop in params.stop or []:
            if stop in text:
                text = text[:text.index(stop)]
                return FakeCompletionOutput(index, text, tokenizer.encode(text) + [0], "stop")
        token_ids = tokenizer.encode(text)
        if params.max_tokens is not None and len(token_ids) > params.max_tokens:
            token_ids = token_ids[:params.max_tokens]
            return FakeCompletionOutput(index, tokenizer.decode(token_ids), token_ids, "length")
        return FakeCompletionOutput(index, text, token_ids + [tokenizer.eos_token_id], "stop")


def fake_api() -> SimpleNamespace:
    """A namespace shaped like the `vllm` names the backend imports, whose `LLM` records each instance built."""
    instances: list[FakeLLM] = []

    def make_llm(model: str, **engine_args: Any) -> FakeLLM:
        llm = FakeLLM(model=model, engine_args=engine_args)
        instances.append(llm)
        return llm

    return SimpleNamespace(LLM=make_llm, SamplingParams=FakeSamplingParams, LoRARequest=FakeLoRARequest,
                           instances=instances)
