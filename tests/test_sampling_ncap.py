"""K samples at the server's cap on n: chunking, caps read from refusals (OpenAI, vLLM), n = 1 servers, seeds
per chunk, and `iter_k`'s bounded window. Offline fakes, plus one run against the mock endpoint."""

from __future__ import annotations

import asyncio
import math
import random
from contextlib import aclosing

import pytest

from agents.llm.ncap import OPENAI_MAX_N, UNCAPPED_CHUNK, default_max_n, parse_n_refusal
from agents.llm.openai_backend import OpenAIBackend
from agents.llm.sampling import iter_k, sample_k
from agents.llm.types import ChatResult, Choice, LLMError, SamplingParams, Usage

ASK = [{"role": "user", "content": "What is 2 + 3?"}]
OPENAI_400 = "Invalid 'n': integer above maximum value. Expected a value <= {cap}, but got {n} instead."
VLLM_400 = ("n must be at most {cap}, got {n}. To increase this limit, set the VLLM_MAX_N_SEQUENCES "
            "environment variable.")
ONLY_ONE_400 = "Unsupported value: 'n' does not support {n} with this model. Only the default (1) value is supported."
GREEDY_400 = "n must be 1 when using greedy sampling, got {n}."


class FakeServer:
    """An `LLM` that refuses n above `cap` with `refusal` (formatted with cap and n) as the openai backend would
    raise it, answers up to `returns` choices (a server that silently returns fewer), and records every request.

    Each choice's text is "seed/offset/j" so tests can see which request drew it; `delay` gives each request a
    latency (seconded by a seeded RNG) so requests overlap and land out of order.
    """

    def __init__(self, cap: int | None = None, refusal: str = OPENAI_400, *, param: str | None = None,
                 returns: int | None = None, delay: float = 0.0, max_n: int | None = None) -> None:
        self.model, self.supports_n = "fake", True
        if max_n is not None:
            self.max_n = max_n
        self.cap, self.refusal, self.param, self.returns, self.delay = cap, refusal, param, returns, delay
        self.asked: list[int] = []  # n of every request, refused ones included
        self.refused = 0
        self.seeds: list[int | None] = []
        self.offsets: list[int] = []
        self.in_flight = self.max_in_flight = self.cancelled = 0
        self.rng = random.Random(0)

    async def chat(self, messages, params, *, tools=None, sample_offset=0) -> ChatResult:
        self.asked.append(params.n)
        if self.cap is not None and params.n > self.cap:
            self.refused += 1
            raise LLMError("bad_request", "HTTP 400: " + self.refusal.format(cap=self.cap, n=params.n), status=400,
                           param=self.param)
        self.seeds.append(params.seed)
        self.offsets.append(sample_offset)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay * self.rng.random())
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        count = params.n if self.returns is None else min(params.n, self.returns)
        choices = [Choice(index=j, message={"role": "assistant", "content": f"{params.seed}/{sample_offset}/{j}"})
                   for j in range(count)]
        return ChatResult(model="fake", choices=choices, usage=Usage(prompt_tokens=10, completion_tokens=count))

    async def aclose(self) -> None:
        pass

    @property
    def accepted(self) -> list[int]:
        return [n for n in self.asked if self.cap is None or n <= self.cap]


def indices(results: list[ChatResult]) -> list[int]:
    return [c.index for r in results for c in r.choices]


async def test_openai_refusal_text_gives_ceil_k_over_128_requests_plus_the_one_refused():
    llm = FakeServer(cap=128, refusal=OPENAI_400, param="n")
    k = 2000
    results = await sample_k(llm, ASK, SamplingParams(), k)
    assert indices(results) == list(range(k))
    assert llm.refused == 1 and llm.asked[0] == UNCAPPED_CHUNK  # no cap known: a bounded first request
    assert len(llm.accepted) == math.ceil(k / 128) == 16 and max(llm.accepted) == 128
    assert llm.max_n == 128 and llm.supports_n  # learned for the rest of the job, n still used
    again = await sample_k(llm, ASK, SamplingParams(), 300)
    assert indices(again) == list(range(300)) and llm.refused == 1 and llm.asked[-3:] == [128, 128, 44]


async def test_vllm_refusal_text_is_read_as_its_cap():
    llm = FakeServer(cap=16, refusal=VLLM_400)
    results = await sample_k(llm, ASK, SamplingParams(), 40)
    assert indices(results) == list(range(40))
    assert llm.asked == [40, 16, 16, 8] and llm.max_n == 16


async def test_a_server_that_allows_only_n_1_gets_single_requests_from_then_on():
    llm = FakeServer(cap=1, refusal=ONLY_ONE_400, param="n")
    results = await sample_k(llm, ASK, SamplingParams(seed=7), 5)
    assert indices(results) == list(range(5))
    assert llm.asked == [5, 1, 1, 1, 1, 1] and llm.supports_n is False
    assert llm.seeds == [7, 8, 9, 10, 11]  # sample i has seed + i, as before
    await sample_k(llm, ASK, SamplingParams(), 3)
    assert llm.asked[6:] == [1, 1, 1] and llm.refused == 1


async def test_greedy_refusal_holds_for_that_call_only():
    llm = FakeServer(cap=1, refusal=GREEDY_400)
    await sample_k(llm, ASK, SamplingParams(temperature=0.0), 3)
    assert llm.asked == [3, 1, 1, 1]
    assert llm.supports_n is True and getattr(llm, "max_n", None) is None


async def test_a_configured_cap_is_used_without_a_refusal():
    llm = FakeServer(cap=50, max_n=50)
    results = await sample_k(llm, ASK, SamplingParams(), 120)
    assert indices(results) == list(range(120)) and llm.asked == [50, 50, 20] and llm.refused == 0
    llm.asked.clear()
    await sample_k(llm, ASK, SamplingParams(), 70, max_n=30)  # the call's own cap, when lower
    assert sorted(llm.asked, reverse=True) == [30, 30, 10] and llm.max_n == 50


async def test_each_chunk_gets_its_own_seed_and_offset():
    llm = FakeServer(max_n=50)
    results = await sample_k(llm, ASK, SamplingParams(seed=100), 120)
    assert sorted(zip(llm.offsets, llm.seeds)) == [(0, 100), (50, 150), (100, 200)]
    texts = [c.text for r in results for c in r.choices]
    assert texts[0] == "100/0/0" and texts[50] == "150/50/0" and texts[119] == "200/100/19"
    unseeded = FakeServer(max_n=50)
    await sample_k(unseeded, ASK, SamplingParams(), 120)
    assert unseeded.seeds == [None, None, None]


async def test_a_refusal_without_a_number_halves_until_accepted_and_keeps_that_size():
    llm = FakeServer(cap=40, refusal="too many choices requested ({n})")
    results = await sample_k(llm, ASK, SamplingParams(), 100)
    assert indices(results) == list(range(100))
    assert llm.asked == [100, 50, 25, 25, 25, 25] and llm.max_n == 25


async def test_a_400_that_is_not_about_n_is_raised_and_not_taken_for_a_cap():
    message = "This model's maximum context length is 4097 tokens. However, your messages resulted in 5000 tokens."
    llm = FakeServer(cap=0, refusal=message)
    with pytest.raises(LLMError) as info:
        await sample_k(llm, ASK, SamplingParams(), 8)
    assert "context length" in info.value.message
    assert llm.asked == [8, 4, 2, 1] and getattr(llm, "max_n", None) is None and llm.supports_n
    tokens = "The parameter 'max_tokens' is not valid: expected a value <= 128000, but got 170000 instead."
    assert parse_n_refusal(tokens, asked=200000) is None
    assert parse_n_refusal(OPENAI_400.format(cap=128, n=130), asked=130, param="max_tokens") is None


async def test_other_errors_are_raised_at_once():
    class Down(FakeServer):
        async def chat(self, messages, params, **kw):
            self.asked.append(params.n)
            raise LLMError("server_error", "HTTP 503: overloaded", status=503, retryable=True)

    llm = Down()
    with pytest.raises(LLMError) as info:
        await sample_k(llm, ASK, SamplingParams(), 300)
    assert info.value.kind == "server_error" and llm.asked == [300]


async def test_a_reply_with_fewer_choices_is_topped_up_at_that_size():
    llm = FakeServer(returns=7)
    results = await sample_k(llm, ASK, SamplingParams(seed=1), 20)
    assert indices(results) == list(range(20))
    assert llm.asked == [20, 7, 6] and llm.offsets == [0, 7, 14] and llm.seeds == [1, 8, 15]


def test_parsed_wordings_and_provider_defaults():
    assert parse_n_refusal(OPENAI_400.format(cap=128, n=130), asked=130).cap == 128
    assert parse_n_refusal("130 is greater than the maximum of 128 - 'n'", asked=130).cap == 128
    assert parse_n_refusal("'n' must be less than or equal to 128", asked=200).cap == 128
    assert parse_n_refusal(VLLM_400.format(cap=16384, n=20000), asked=20000).cap == 16384
    assert parse_n_refusal("n must be at most 4 on this server (got 9)", asked=9).cap == 4
    assert parse_n_refusal(ONLY_ONE_400.format(n=4), asked=4).cap == 1
    assert not parse_n_refusal(GREEDY_400.format(n=4), asked=4).remember
    assert parse_n_refusal(VLLM_400.format(cap=16, n=8), asked=8) is None  # could not have refused n = 8
    temperature = "Unsupported value: 'temperature' does not support 2 with this model. Only the default (1) value"
    assert parse_n_refusal(temperature, asked=4) is None
    assert default_max_n(None) == default_max_n("https://api.openai.com/v1") == OPENAI_MAX_N
    assert default_max_n("http://127.0.0.1:8000/v1") is None
    assert OpenAIBackend("gpt-4o-mini", api_key="x").max_n == OPENAI_MAX_N
    assert OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key="x").max_n is None
    assert OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key="x", max_n=8).max_n == 8
    with pytest.raises(ValueError, match="max_n"):
        OpenAIBackend("m", api_key="x", max_n=0)


async def test_iter_k_keeps_at_most_window_in_flight_and_yields_chunks_in_sample_order():
    llm = FakeServer(max_n=10, delay=0.01)
    seen: list[int] = []
    async for result in iter_k(llm, ASK, SamplingParams(), 1000, window=4):
        idx = [c.index for c in result.choices]
        assert idx == list(range(idx[0], idx[0] + len(idx))) and len(idx) == 10
        seen.extend(idx)
    assert llm.max_in_flight == 4  # bounded, and the window was used
    assert sorted(seen) == list(range(1000)) and seen != sorted(seen)  # landed out of order, nothing lost
    assert len(llm.asked) == 100


async def test_iter_k_probes_alone_while_the_cap_is_unknown_and_numbers_from_start():
    llm = FakeServer(cap=5, refusal=VLLM_400, delay=0.01)
    got = [r async for r in iter_k(llm, ASK, SamplingParams(seed=3), 20, start=100, window=8)]
    assert sorted(indices(got)) == list(range(100, 120)) and llm.refused == 1
    assert sorted(llm.offsets) == [100, 105, 110, 115] and sorted(llm.seeds) == [103, 108, 113, 118]


async def test_closing_iter_k_early_cancels_its_requests():
    llm = FakeServer(max_n=10, delay=0.05)
    async with aclosing(iter_k(llm, ASK, SamplingParams(), 1000, window=6)) as stream:
        async for _ in stream:
            break
    assert llm.in_flight == 0 and llm.cancelled >= 1 and len(llm.asked) < 20


async def test_against_the_mock_server_cap():
    from selfplay.servers.testing import MockServer

    with MockServer(max_n=4) as server:
        llm = OpenAIBackend("mock-model", base_url=server.base_url, api_key="x", timeout_s=5.0)
        with pytest.raises(LLMError) as refusal:  # the mock refuses as OpenAI does, param included
            await llm.chat(ASK, SamplingParams(n=9))
        results = await sample_k(llm, ASK, SamplingParams(seed=2, max_tokens=32), 10)
        await llm.aclose()
        stats = server.stats()
    assert refusal.value.message == "HTTP 400: " + OPENAI_400.format(cap=4, n=9) and refusal.value.param == "n"
    stats["requests"] -= 1
    stats["errors"]["n_too_large"] -= 1
    assert indices(results) == list(range(10)) and llm.max_n == 4
    assert stats["completions"] == 3 and stats["requests"] == 4 and stats["errors"]["n_too_large"] == 1


async def test_chunked_draw_on_the_local_backend_equals_one_n_k_request():
    from agents.llm.local import LocalBackend
    from tests.tiny_model import tiny_pair, use_one_thread

    use_one_thread()
    model, tokenizer = tiny_pair()
    llm = LocalBackend(model, tokenizer, name="tiny")
    params = SamplingParams(max_tokens=8, temperature=1.0, seed=40)
    whole = [c.text for c in (await llm.chat(ASK, params.with_(n=5))).choices]
    chunked = await sample_k(llm, ASK, params, 5, max_n=2)  # requests of 2, 2, 1 with seeds 40, 42, 44
    await llm.aclose()
    assert [c.text for r in chunked for c in r.choices] == whole and len(set(whole)) > 1


async def test_a_cap_learned_through_the_wrappers_is_kept_for_the_next_task():
    from agents.workflows.common import first_turn
    from tests.test_workflow_fakes import metered

    inner = FakeServer(cap=128, refusal=OPENAI_400, param="n")
    llm = metered(inner)  # as selfplay wraps a backend; first_turn wraps it again per batch (_OffsetLLM)
    first = await first_turn(llm, "direct", "t1", ASK, SamplingParams(seed=1), 300, 0)
    second = await first_turn(llm, "direct", "t2", [{"role": "user", "content": "1 + 1?"}], SamplingParams(seed=2),
                              300, 0)
    assert all(r.turns == 1 and not r.error for r in first + second)
    assert inner.refused == 1 and inner.max_n == llm.max_n == 128 and len(inner.accepted) == 6


async def test_iter_k_holds_one_window_of_results_whatever_k():
    import tracemalloc

    async def peak(k: int) -> int:
        llm = FakeServer(max_n=200)
        tracemalloc.start()
        drawn = 0
        async for result in iter_k(llm, ASK, SamplingParams(), k, window=2):
            drawn += len(result.choices)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert drawn == k
        return top

    small, large = await peak(2_000), await peak(20_000)
    assert large < 1.5 * small  # ten times the samples, not ten times the memory (sample_k would hold them all)
