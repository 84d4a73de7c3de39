"""Sampling from a real vLLM server through our `openai` backend: n choices, vLLM's sampled token ids and
log-probs (asked for by the backend itself once it sees a vLLM server), and those ids and log-probs equal to a
teacher-forced pass of the same weights in transformers (float32, CPU)."""

from __future__ import annotations

import httpx
import pytest
import torch

from agents.llm.openai_backend import OpenAIBackend
from agents.llm.types import SamplingParams
from tests.tiny_model import chat_ids
from tests.vllm.server import BASE_NAME

ASK = [{"role": "user", "content": "12+30="}]
# float32 on the CPU: vLLM's kernels and transformers' eager attention agree to ~4e-5 here.
LOGPROB_TOLERANCE = 1e-3


def teacher_forced_logprobs(model, prompt_ids: list[int], ids: list[int]) -> torch.Tensor:
    """log p(ids[t] | prompt, ids[:t]) for each t, from one forward pass of `model` at temperature 1."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + ids])).logits[0].float()
    steps = torch.log_softmax(logits, dim=-1)[len(prompt_ids) - 1:len(prompt_ids) - 1 + len(ids)]
    return steps.gather(1, torch.tensor(ids)[:, None])[:, 0]


async def sample(url: str, n: int, max_tokens: int, **kw) -> tuple[OpenAIBackend, object]:
    backend = OpenAIBackend(BASE_NAME, base_url=url, timeout_s=120, **kw)
    try:
        result = await backend.chat(ASK, SamplingParams(n=n, max_tokens=max_tokens, temperature=1.0, seed=7))
    finally:
        await backend.aclose()
    return backend, result


async def test_n_choices_with_token_ids_and_logprobs_asked_for_automatically(vllm_server):
    backend, result = await sample(vllm_server.url, n=6, max_tokens=12)
    assert backend.sampled_tokens is True  # /v1/models said owned_by "vllm"
    assert len(result.choices) == 6 and result.requests == 1 and not result.usage.estimated
    assert [c.index for c in result.choices] == list(range(6))
    for choice in result.choices:
        assert choice.token_ids and all(type(t) is int for t in choice.token_ids)
        assert choice.logprobs and len(choice.logprobs) == len(choice.token_ids)
        assert all(lp <= 0 for lp in choice.logprobs)
        assert choice.finish_reason in ("stop", "length")
    assert result.usage.completion_tokens == sum(len(c.token_ids) for c in result.choices)
    assert len({tuple(c.token_ids) for c in result.choices}) > 1  # n independent samples, not one repeated

    _, plain = await sample(vllm_server.url, n=2, max_tokens=4, sampled_tokens=False)
    assert all(c.token_ids is None and c.logprobs is None for c in plain.choices)


async def test_ids_and_logprobs_equal_a_teacher_forced_pass_of_the_same_weights(vllm_server, tiny_base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32).eval()
    raw = httpx.post(f"{vllm_server.url}/chat/completions", timeout=120, json={
        "model": BASE_NAME, "messages": ASK, "n": 4, "max_tokens": 40, "temperature": 1.0, "seed": 3,
        "logprobs": True, "return_token_ids": True}).json()
    prompt = chat_ids(tokenizer, ASK)
    assert raw["prompt_token_ids"] == prompt  # vLLM renders our chat template as transformers does
    worst = 0.0
    for choice in raw["choices"]:
        ids = choice["token_ids"]
        served = torch.tensor([entry["logprob"] for entry in choice["logprobs"]["content"]])
        worst = max(worst, (teacher_forced_logprobs(model, prompt, ids) - served).abs().max().item())
    assert worst < LOGPROB_TOLERANCE, worst


async def test_greedy_equals_transformers_greedy(vllm_server, tiny_base):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.tiny_model import greedy_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32).eval()
    backend = OpenAIBackend(BASE_NAME, base_url=vllm_server.url, timeout_s=120)
    try:
        result = await backend.chat(ASK, SamplingParams(n=1, max_tokens=24, temperature=0.0))
    finally:
        await backend.aclose()
    expected = greedy_ids(model, chat_ids(tokenizer, ASK), 24, tokenizer.eos_token_id)
    assert result.choices[0].token_ids == expected


@pytest.mark.parametrize("n", [0, -1])
def test_a_bad_n_is_a_400(vllm_server, n):
    response = httpx.post(f"{vllm_server.url}/chat/completions", timeout=60,
                          json={"model": BASE_NAME, "messages": ASK, "n": n, "max_tokens": 4})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"]
