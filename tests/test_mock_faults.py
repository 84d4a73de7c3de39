"""Injected faults as the official `openai` client sees them, and retries that always get through."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import openai
import pytest

from selfplay.servers.mock.faults import FAULT_KINDS
from selfplay.servers.testing import mock_llm_factory  # noqa: F401  (fixture)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def ask(client, text: str = "What is 1 + 2?"):
    return client.chat.completions.create(model="m", messages=user(text))


def test_429_is_a_rate_limit_error_with_small_retry_after(mock_llm_factory):
    server = mock_llm_factory(faults={"429": 1.0}, retry_after_ms=30)
    with pytest.raises(openai.RateLimitError) as err:
        ask(server.client(max_retries=0))
    headers = err.value.response.headers
    assert headers["retry-after"] == "0.03" and headers["retry-after-ms"] == "30"
    assert server.stats()["faults"]["429"] == 1


def test_500_is_an_internal_server_error_among_500_502_503(mock_llm_factory):
    server = mock_llm_factory(faults={"500": 1.0}, max_consecutive_faults=100)
    client = server.client(max_retries=0)
    statuses = set()
    for i in range(12):
        with pytest.raises(openai.InternalServerError) as err:
            ask(client, f"What is {i} + 2?")
        statuses.add(err.value.status_code)
    assert statuses == {500, 502, 503}


def test_malformed_is_a_200_without_a_usable_completion(mock_llm_factory):
    server = mock_llm_factory(faults={"malformed": 1.0}, max_consecutive_faults=100)
    client = server.client(max_retries=0)
    seen = set()
    for i in range(10):
        try:
            out = ask(client, f"What is {i} + 2?")
        except ValueError:  # invalid JSON: openai lets json.JSONDecodeError through
            seen.add("invalid_json")
        else:
            assert out.choices is None  # valid JSON without `choices` (not validated by default)
            seen.add("missing_choices")
    assert seen == {"invalid_json", "missing_choices"}
    strict = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0, _strict_response_validation=True)
    with pytest.raises((openai.APIResponseValidationError, ValueError)):
        ask(strict, "What is 50 + 2?")


def test_truncate_drops_the_connection_mid_body(mock_llm_factory):
    server = mock_llm_factory(faults={"truncate": 1.0})
    with pytest.raises(openai.APIConnectionError) as err:
        ask(server.client(max_retries=0))
    assert type(err.value.__cause__).__name__ == "RemoteProtocolError"
    assert "incomplete" in str(err.value.__cause__) or "complete message body" in str(err.value.__cause__)
    with httpx.Client(trust_env=False) as http, pytest.raises(httpx.RemoteProtocolError):
        http.post(server.base_url + "/chat/completions", json={"model": "m", "messages": user("What is 1 + 2?")})


def test_timeout_holds_one_request_without_blocking_others_and_stops_fast(mock_llm_factory):
    server = mock_llm_factory(faults={"timeout": 1.0}, max_consecutive_faults=1, hang_s=30)
    with pytest.raises(openai.APITimeoutError):
        ask(server.client(max_retries=0, timeout=0.3), "What is 5 + 5?")  # attempt 0: held
    _wait_until(lambda: server.stats()["in_flight"] == 0, timeout=2)  # the server saw the client leave
    held = threading.Thread(target=lambda: _swallow(lambda: ask(server.client(max_retries=0, timeout=60))))
    held.start()  # a fresh request: attempt 0 of its key, held open for up to 30 s
    _wait_until(lambda: server.stats()["in_flight"] == 1)
    start = time.perf_counter()
    out = ask(server.client(max_retries=0, timeout=5), "What is 5 + 5?")  # attempt 1: served
    assert time.perf_counter() - start < 1.0 and out.choices[0].message.content.endswith(r"\boxed{10}.")
    start = time.perf_counter()
    server.stop()  # releases the held request (504) instead of waiting 30 s
    held.join(5)
    assert not held.is_alive() and time.perf_counter() - start < 5


def _swallow(fn) -> None:
    try:
        fn()
    except openai.APIError:
        pass


def _wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


async def _retrying_workload(server, prompts: list[str], concurrency: int) -> dict[str, str]:
    """Each prompt retried (fresh client call, no SDK retries) until it gets a usable completion."""
    client = server.async_client(max_retries=0, timeout=0.4)
    gate = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> tuple[str, str]:
        async with gate:
            for _ in range(10):
                try:
                    out = await client.chat.completions.create(model="m", messages=user(prompt), n=2)
                except (openai.APIError, ValueError):
                    continue
                if out.choices:
                    return prompt, "|".join(c.message.content for c in out.choices)
            raise AssertionError(f"{prompt!r} never got through")

    try:
        return dict(await asyncio.gather(*(one(p) for p in prompts)))
    finally:
        await client.close()


def test_every_request_gets_through_and_faults_are_deterministic_across_concurrency(mock_llm_factory):
    prompts = [f"What is {i} * 3?" for i in range(24)]
    options = {"faults": {kind: 0.2 for kind in FAULT_KINDS}, "seed": 11, "hang_s": 2}  # 100% faulty
    runs = []
    for concurrency in (24, 5):
        server = mock_llm_factory(**options)
        results = asyncio.run(_retrying_workload(server, prompts, concurrency))
        stats = server.stats()
        runs.append((results, stats["faults"]))
        assert stats["completions"] == len(prompts) and stats["duplicate_replies"] == 0
        assert stats["faults_total"] == stats["requests"] - len(prompts) == 3 * len(prompts)  # capped at 3
    assert runs[0] == runs[1]
    assert all(count > 0 for count in runs[0][1].values())
