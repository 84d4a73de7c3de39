"""The openai backend against the mock endpoint: n=K, fallbacks, usage, retries, fail-fast errors."""

import time

import pytest

from agents.llm.metered import MemoryCache, MeteredLLM
from agents.llm.openai_backend import OpenAIBackend
from agents.llm.retry import RetryPolicy, backoff_seconds, parse_retry_after
from agents.llm.sampling import sample_k
from agents.llm.types import BudgetExceeded, LLMError, SamplingParams
from agents.money.ledger import BudgetLedger, Caps
from agents.money.prices import ModelPrice
from selfplay.servers.testing import MockServer

ASK = [{"role": "user", "content": "What is 2 + 3?"}]
FAST = RetryPolicy(max_attempts=6, backoff_base_s=0.01, backoff_max_s=0.05)


def backend(server, **kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout_s", 1.0)
    return OpenAIBackend("mock-model", base_url=server.base_url, api_key="x", **kw)


async def test_n_choices_in_one_request_with_usage():
    with MockServer() as server:
        llm = backend(server)
        result = await llm.chat(ASK, SamplingParams(n=4, seed=1, max_tokens=64))
        await llm.aclose()
        assert len(result.choices) == 4 and result.requests == 1
        assert "\\boxed{5}" in result.choices[0].text
        stats = server.stats()
        assert result.usage.prompt_tokens == stats["usage"]["prompt_tokens"]
        assert result.usage.completion_tokens == stats["usage"]["completion_tokens"]
        assert not result.usage.estimated


async def test_server_refusing_n_falls_back_to_single_requests():
    with MockServer(max_n=1) as server:
        llm = backend(server)
        results = await sample_k(llm, ASK, SamplingParams(seed=3, max_tokens=64), 4)
        await llm.aclose()
        assert [c.index for r in results for c in r.choices] == [0, 1, 2, 3]
        assert llm.supports_n is False
        assert server.stats()["completions"] == 4


async def test_missing_usage_is_estimated_and_marked():
    with MockServer(usage=False) as server:
        llm = backend(server)
        result = await llm.chat(ASK, SamplingParams(max_tokens=64))
        await llm.aclose()
        assert result.usage.estimated and result.usage.completion_tokens > 0 and result.usage.prompt_tokens > 0


@pytest.mark.parametrize("kind", ["429", "500", "malformed", "truncate", "timeout"])
async def test_each_fault_kind_is_retried_until_it_succeeds(kind):
    with MockServer(faults={kind: 1.0}, hang_s=5, max_consecutive_faults=2) as server:
        llm = backend(server, timeout_s=0.5)
        result = await llm.chat(ASK, SamplingParams(max_tokens=32))
        await llm.aclose()
        assert result.requests == 3  # two faults, then the reply
        assert sum(llm.attempt_errors.values()) == 2


async def test_retry_after_header_is_honoured():
    with MockServer(faults={"429": 1.0}, max_consecutive_faults=1, retry_after_ms=300) as server:
        llm = backend(server, retry=RetryPolicy(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0))
        started = time.perf_counter()
        await llm.chat(ASK, SamplingParams(max_tokens=16))
        await llm.aclose()
        assert time.perf_counter() - started >= 0.28


async def test_attempts_are_capped():
    with MockServer(faults={"500": 1.0}, max_consecutive_faults=100) as server:
        llm = backend(server, retry=RetryPolicy(max_attempts=3, backoff_base_s=0.0, backoff_max_s=0.0))
        with pytest.raises(LLMError) as info:
            await llm.chat(ASK, SamplingParams(max_tokens=16))
        await llm.aclose()
        assert info.value.kind == "server_error"
        assert server.stats()["requests"] == 3


async def test_client_errors_fail_fast_with_the_servers_message():
    with MockServer(max_n=1) as server:
        llm = backend(server)
        with pytest.raises(LLMError) as info:
            await llm.chat(ASK, SamplingParams(max_tokens=16, n=4))
        await llm.aclose()
        assert info.value.kind == "bad_request" and not info.value.retryable and info.value.status == 400
        assert "n" in info.value.message
        assert server.stats()["requests"] == 1


def test_backoff_is_jittered_exponential_and_honours_hints():
    policy = RetryPolicy(backoff_base_s=1.0, backoff_max_s=8.0)
    assert all(0 <= backoff_seconds(policy, 3, None) <= 4.0 for _ in range(50))
    assert backoff_seconds(policy, 10, None) <= 8.0
    assert backoff_seconds(policy, 1, 2.5) == 2.5
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert parse_retry_after({"Retry-After": "3"}) == 3.0
    assert parse_retry_after({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None


async def test_metered_cache_hit_is_free_and_sends_nothing():
    with MockServer() as server:
        cache, ledger = MemoryCache(), BudgetLedger(Caps(usd=1.0))
        llm = MeteredLLM(backend(server), price=ModelPrice(input=1.0, output=1.0), ledger=ledger, cache=cache)
        first = await llm.chat(ASK, SamplingParams(max_tokens=32, seed=7))
        second = await llm.chat(ASK, SamplingParams(max_tokens=32, seed=7))
        await llm.aclose()
        assert first.cost_usd > 0 and not first.cache_hit
        assert second.cache_hit and second.cost_usd == 0 and second.choices == first.choices
        assert server.stats()["completions"] == 1


async def test_metered_refuses_what_does_not_fit_and_sends_nothing():
    with MockServer() as server:
        ledger = BudgetLedger(Caps(usd=1e-9))
        llm = MeteredLLM(backend(server), price=ModelPrice(input=1.0, output=1.0), ledger=ledger)
        with pytest.raises(BudgetExceeded):
            await llm.chat(ASK, SamplingParams(max_tokens=32))
        await llm.aclose()
        assert server.stats()["by_endpoint"].get("chat.completions", 0) == 0


def test_reply_json_becomes_a_chat_result_with_null_members_dropped():
    from agents.llm.openai_backend import to_chat_result

    call = {"id": "c1", "type": "function", "function": {"name": "run", "arguments": "{}"}, "extra": None}
    raw = {"model": "m", "choices": [
        {"index": 0, "finish_reason": "tool_calls",
         "message": {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}},
        {"index": 1, "finish_reason": "stop", "message": {"content": "5"}}],
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 4}}}
    result = to_chat_result(raw, "fallback", ASK)
    assert result.choices[0].message == {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "run", "arguments": "{}"}}]}
    assert result.choices[1].message == {"role": "assistant", "content": "5"} and result.choices[1].text == "5"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.cached_prompt_tokens) == (7, 3, 4)
    for bad in ({"choices": []}, {"choices": [{"index": 0}]}, "not json", {"choices": [{"message": {"content": 3}}]}):
        with pytest.raises(LLMError) as caught:
            to_chat_result(bad, "m", ASK)
        assert caught.value.kind == "malformed_reply" and caught.value.retryable


def test_request_body_merges_extra_body_last():
    from agents.llm.openai_backend import request_body

    body = request_body("m", ASK, SamplingParams(max_tokens=8, seed=3, stop=["\n"]), None, {"top_k": 5, "n": 2})
    assert body == {"model": "m", "messages": ASK, "max_tokens": 8, "temperature": 1.0, "top_p": 1.0, "n": 2,
                    "stop": ["\n"], "seed": 3, "top_k": 5}
