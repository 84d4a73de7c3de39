"""The mock server through the official `openai` client: n, usage, stop/max_tokens, tool calls, determinism,
stats, the fixture API."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import openai
import pytest

from selfplay.servers.mock.tokens import chat_prompt_tokens, count_tokens
from selfplay.servers.testing import MockServer, mock_llm, mock_llm_factory  # noqa: F401  (fixtures)

AGENT = Path(__file__).parent / "data" / "mock_agent.toml"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.fixture(scope="module")
def agent_server():
    with MockServer(script=AGENT) as server:
        yield server


@pytest.fixture
def agent(agent_server):
    agent_server.reset()
    return agent_server


def test_n_choices_and_exact_usage(agent):
    client = agent.client(max_retries=0)
    out = client.chat.completions.create(model="policy", messages=user("What is 2 + 3?"), n=3)
    texts = [c.message.content for c in out.choices]
    assert texts == [r"2 + 3 = 5. \boxed{5}", r"Adding: \boxed{5}", r"Hmm, \boxed{6}"]
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert {c.finish_reason for c in out.choices} == {"stop"}
    assert out.usage.prompt_tokens == chat_prompt_tokens(user("What is 2 + 3?"), None, lambda c: c) == 13
    assert out.usage.completion_tokens == sum(count_tokens(t) for t in texts)
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert out.usage.prompt_tokens_details.cached_tokens == 0


def test_max_tokens_truncates_with_length_and_stop_cuts(agent):
    client = agent.client(max_retries=0)
    out = client.chat.completions.create(model="policy", messages=user("What is 2 + 3?"), max_tokens=4)
    assert out.choices[0].message.content == "2 + 3 ="
    assert out.choices[0].finish_reason == "length" and out.usage.completion_tokens == 4
    out = client.chat.completions.create(model="policy", messages=user("What is 2 + 3?"), stop=[". "])
    assert out.choices[0].message.content == "2 + 3 = 5"
    assert out.choices[0].finish_reason == "stop"


def test_tool_calls_round_trip_through_the_openai_client(agent):
    client = agent.client(max_retries=0)
    messages = user("Compute 6 * 7, please.")
    first = client.chat.completions.create(model="policy", messages=messages)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "calculator"
    assert call.function.arguments == '{"expression": "6 * 7"}'
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "result: 42"}]
    second = client.chat.completions.create(model="policy", messages=messages)
    assert second.choices[0].message.content.endswith(r"\boxed{42}.")
    assert second.choices[0].finish_reason == "stop"
    assert agent.stats()["rules"] == {"call-calculator": 1, "use-tool-result": 1}


def test_completions_endpoint_models_and_no_rule(agent, mock_llm_factory):
    client = agent.client(max_retries=0)
    out = client.completions.create(model="policy", prompt=["What is 1 + 1?", "What is 2 + 2?"], n=2)
    assert [c.text for c in out.choices] == [r"1 + 1 = 2. \boxed{2}", r"Adding: \boxed{2}",
                                             r"2 + 2 = 4. \boxed{4}", r"Adding: \boxed{4}"]
    assert out.usage.prompt_tokens == 2 * count_tokens("What is 1 + 1?")
    assert [m.id for m in client.models.list()] == ["policy", "judge"]
    strict = mock_llm_factory({"rules": [{"contains": "only this", "reply": "ok"}]})
    with pytest.raises(openai.BadRequestError) as err:
        strict.client(max_retries=0).chat.completions.create(model="m", messages=user("something else"))
    assert err.value.code == "no_rule_matched"
    assert strict.stats()["errors"]["no_rule_matched"] == 1


def test_max_n_refuses_larger_n_and_no_usage(mock_llm_factory):
    server = mock_llm_factory(max_n=1, usage=False)
    client = server.client(max_retries=0)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="m", messages=user("What is 1 + 2?"), n=2)
    assert err.value.code == "n_too_large"
    out = client.chat.completions.create(model="m", messages=user("What is 1 + 2?"), n=1)
    assert out.choices[0].message.content.endswith(r"\boxed{3}.") and out.usage is None


async def _run_all(server: MockServer, prompts: list[str], concurrency: int, seed=None) -> list[list[str]]:
    client = server.async_client(max_retries=0)
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> list[str]:
        async with gate:
            extra = {} if seed is None else {"seed": seed}
            out = await client.chat.completions.create(model="m", messages=user(prompt), n=3, **extra)
            return [c.message.content for c in out.choices]

    try:
        return await asyncio.gather(*(one(p) for p in prompts))
    finally:
        await client.close()


def test_replies_do_not_depend_on_concurrency_or_order_but_on_seeds(mock_llm_factory):
    prompts = [f"What is {a} * {a + 3}?" for a in range(24)]
    server = mock_llm_factory(seed=1)
    sequential = asyncio.run(_run_all(server, prompts, 1))
    concurrent = asyncio.run(_run_all(server, list(reversed(prompts)), 32))
    assert sequential == list(reversed(concurrent))
    assert len({t for ts in sequential for t in ts}) > 24  # the replies really vary
    other_server_seed = asyncio.run(_run_all(mock_llm_factory(seed=2), prompts, 16))
    assert other_server_seed != sequential
    request_seed = asyncio.run(_run_all(server, prompts, 16, seed=5))
    assert request_seed != sequential
    assert request_seed == asyncio.run(_run_all(server, prompts, 4, seed=5))


def test_stats_count_replies_per_request_and_reset(agent):
    http = httpx.Client(trust_env=False)
    body = {"model": "policy", "messages": user("What is 4 + 4?")}
    first = http.post(agent.base_url + "/chat/completions", json=body)
    again = http.post(agent.base_url + "/chat/completions", json=body)
    other = http.post(agent.base_url + "/chat/completions", json={**body, "n": 2})
    http.get(agent.base_url + "/models")
    http.close()
    key = first.headers["x-mock-request-key"]
    assert again.headers["x-mock-request-key"] == key != other.headers["x-mock-request-key"]
    assert first.content == again.content  # byte-identical, `created` included
    stats = agent.stats()
    assert stats["requests"] == 4 and stats["by_endpoint"] == {"chat.completions": 3, "models": 1}
    assert stats["completions"] == 3 and stats["choices"] == 4
    assert stats["replies_by_key"] == {key: 2, other.headers["x-mock-request-key"]: 1}
    assert stats["duplicate_replies"] == 1 and stats["faults_total"] == 0
    assert stats["usage"]["prompt_tokens"] == 3 * first.json()["usage"]["prompt_tokens"]
    assert stats["in_flight"] == 0 and stats["max_in_flight"] >= 1
    agent.reset()
    assert agent.stats()["requests"] == 0 and agent.stats()["replies_by_key"] == {}


def test_latency_is_added_without_serializing_requests(mock_llm_factory):
    server = mock_llm_factory(latency_ms=200)
    prompts = [f"What is {i} + 1?" for i in range(16)]
    start = time.perf_counter()
    asyncio.run(_run_all(server, prompts, 16))
    elapsed = time.perf_counter() - start
    assert 0.2 <= elapsed < 1.5
    assert server.stats()["max_in_flight"] > 1


@pytest.mark.parametrize("mock_llm", [{"seed": 3, "max_n": 2}], indirect=True)
def test_the_mock_llm_fixture_takes_options(mock_llm):
    assert mock_llm.base_url.endswith("/v1") and mock_llm.base_url.startswith("http://127.0.0.1:")
    out = mock_llm.client(max_retries=0).chat.completions.create(model="m", messages=user("What is 20 + 22?"))
    assert r"\boxed{42}" in out.choices[0].message.content
    assert mock_llm.config.max_n == 2 and mock_llm.stats()["completions"] == 1
