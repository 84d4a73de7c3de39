"""`stream: true` against the mock server with the official `openai` client, and the `openai` backend's stream mode."""

from __future__ import annotations

import openai
import pytest

from agents.llm.openai_backend import OpenAIBackend
from agents.llm.openai_stream import ChunkFolder
from agents.llm.retry import RetryPolicy
from agents.llm.types import LLMError, SamplingParams
from selfplay.servers.testing import MockServer

ASK = [{"role": "user", "content": "What is 7 + 14?"}]


def test_mock_streams_chunks_that_the_sdk_parses_with_usage_last():
    with MockServer(seed=1) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        whole = client.chat.completions.create(model="mock-model", messages=ASK, n=2, max_tokens=64, seed=3)
        chunks = list(client.chat.completions.create(model="mock-model", messages=ASK, n=2, max_tokens=64, seed=3,
                                                     stream=True, stream_options={"include_usage": True}))
        plain = list(client.chat.completions.create(model="mock-model", messages=ASK, max_tokens=64, stream=True))
        text = list(client.completions.create(model="mock-model", prompt="What is 1 + 2?", max_tokens=64,
                                              stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    joined = {i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
              for i in (0, 1)}
    assert joined == {c.index: c.message.content for c in whole.choices}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [c.finish_reason for c in whole.choices]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert all(c.usage is None for c in chunks[:-1])
    assert all(c.usage is None for c in plain) and plain[-1].choices[0].finish_reason
    assert text[-1].usage.prompt_tokens > 0 and "".join(c.choices[0].text for c in text[:-1])


async def test_openai_backend_stream_mode_gives_the_same_replies_under_faults():
    params = SamplingParams(max_tokens=64, n=3, seed=5)
    faults = {"429": 0.1, "500": 0.1, "truncate": 0.1}
    with MockServer(seed=4, faults=faults, retry_after_ms=1) as server:
        results = {}
        for stream in (False, True):
            backend = OpenAIBackend("mock-model", base_url=server.base_url, timeout_s=5, stream=stream,
                                    retry=RetryPolicy(max_attempts=8, backoff_base_s=0.001, backoff_max_s=0.01))
            results[stream] = [await backend.chat([{"role": "user", "content": f"What is {i} + {i}?"}], params)
                               for i in range(10)]
            await backend.aclose()
        stats = server.stats()
    assert stats["faults_total"] > 0
    for a, b in zip(results[False], results[True]):
        assert [c.text for c in a.choices] == [c.text for c in b.choices]
        assert [c.finish_reason for c in a.choices] == [c.finish_reason for c in b.choices]
        assert a.usage == b.usage and not b.usage.estimated


def test_folder_joins_tool_call_deltas_and_refuses_garbage():
    folder = ChunkFolder()
    folder.add({"id": "c1", "model": "m", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]})
    folder.add({"choices": [{"index": 0, "delta": {"tool_calls": [
        {"index": 0, "id": "call_1", "function": {"name": "run", "arguments": "{\"co"}}]}}]})
    folder.add({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "de\": 1}"}}]},
                             "finish_reason": "tool_calls"}]})
    body = folder.body()
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert call["id"] == "call_1" and call["function"] == {"name": "run", "arguments": "{\"code\": 1}"}
    assert body["choices"][0]["finish_reason"] == "tool_calls" and body["id"] == "c1"
    with pytest.raises(LLMError):
        ChunkFolder().add({"choices": [{"delta": {}}]})
