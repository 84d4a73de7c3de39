"""`selfplay serve` with the official `openai` client: n>1, usage, seed, stop, models, health, clear 4xx errors."""

import argparse
import os
import signal
import subprocess
import sys
import time

import httpx
import openai
import pytest

from agents.llm.local import LocalBackend
from agents.llm.openai_backend import OpenAIBackend
from agents.llm.sampling import sample_k
from agents.llm.types import LLMError, SamplingParams
from selfplay.cli import main as cli_main
from selfplay.servers.serve import BackgroundServer
from tests.tiny_model import chat_ids, save_tiny, tiny_pair, use_one_thread

use_one_thread()
ASK = [{"role": "user", "content": "what is 2+2?"}]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def served():
    model, tokenizer = tiny_pair()
    with BackgroundServer(LocalBackend(model, tokenizer, name="tiny")) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=30)
        yield server, client, tokenizer


def test_n_samples_with_usage_seed_and_stop(served):
    _, client, tokenizer = served
    reply = client.chat.completions.create(model="tiny", messages=ASK, n=3, max_tokens=8, seed=5, temperature=1.0)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) == 3
    assert reply.usage.prompt_tokens == len(chat_ids(tokenizer, ASK))
    assert 3 <= reply.usage.completion_tokens <= 24
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    again = client.chat.completions.create(model="tiny", messages=ASK, n=3, max_tokens=8, seed=5, temperature=1.0)
    assert [c.message.content for c in again.choices] == [c.message.content for c in reply.choices]

    full = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=10, temperature=0)
    text = full.choices[0].message.content
    cut = client.chat.completions.create(model="tiny", messages=ASK, max_tokens=10, temperature=0, stop=text[3:5])
    assert cut.choices[0].message.content == text[:text.find(text[3:5])]
    assert cut.choices[0].finish_reason == "stop"


def test_models_and_health(served):
    server, client, _ = served
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert httpx.get(f"http://{server.host}:{server.port}/health").json()["status"] == "ok"


@pytest.mark.parametrize("change, field", [
    ({"n": 0}, "n"), ({"temperature": 7}, "temperature"), ({"messages": []}, "messages"),
    ({"max_tokens": 100_000}, None), ({"logprobs": True, "top_logprobs": 2}, "top_logprobs"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}, "tools"),
])
def test_bad_requests_are_clear_400s(served, change, field):
    _, client, _ = served
    body = {"model": "tiny", "messages": ASK, "max_tokens": 4, **change}
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**body)
    assert info.value.status_code == 400
    error = info.value.body
    assert error["message"] and (field is None or error["param"] == field)


def test_stream_with_usage_matches_the_unstreamed_reply(served):
    _, client, _ = served
    whole = client.chat.completions.create(model="tiny", messages=ASK, n=2, max_tokens=8, seed=5)
    chunks = list(client.chat.completions.create(model="tiny", messages=ASK, n=2, max_tokens=8, seed=5, stream=True,
                                                 stream_options={"include_usage": True}))
    texts = {i: "".join(c.choices[0].delta.content or "" for c in chunks if c.choices and c.choices[0].index == i)
             for i in (0, 1)}
    assert texts == {c.index: c.message.content for c in whole.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens
    with pytest.raises(openai.BadRequestError, match="tool calls are not parsed"):
        client.chat.completions.create(model="tiny", messages=ASK, max_tokens=4, tools=[
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])


def test_completions_continue_raw_text_without_the_chat_template(served):
    _, client, tokenizer = served
    reply = client.completions.create(model="tiny", prompt="2 + 2 =", max_tokens=6, temperature=0)
    assert reply.object == "text_completion" and isinstance(reply.choices[0].text, str)
    assert reply.usage.prompt_tokens == len(tokenizer("2 + 2 =", add_special_tokens=False)["input_ids"])
    streamed = list(client.completions.create(model="tiny", prompt="2 + 2 =", max_tokens=6, temperature=0,
                                              stream=True))
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt=["a", "b"], max_tokens=4)


def test_unknown_model_is_404_and_broken_json_is_400(served):
    server, client, _ = served
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="gpt-9", messages=ASK, max_tokens=4)
    broken = httpx.post(f"{server.base_url}/chat/completions", content=b"{not json",
                        headers={"content-type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]


async def test_our_openai_backend_and_sample_k_against_serve(served):
    server, _, _ = served
    llm = OpenAIBackend("tiny", base_url=server.base_url, api_key="unused", timeout_s=30)
    results = await sample_k(llm, ASK, SamplingParams(max_tokens=6, seed=1), 4)
    assert len(results) == 1 and len(results[0].choices) == 4 and results[0].usage.estimated is False
    with pytest.raises(LLMError) as info:
        await llm.chat(ASK, SamplingParams(max_tokens=100_000))
    assert info.value.kind == "bad_request"
    await llm.aclose()


def test_cli_refuses_a_model_that_is_neither_a_dir_nor_a_tiny_name(capsys):
    assert cli_main(["serve", "--model", "/no/such/model", "--port", "0"]) == 1
    assert "tiny" in capsys.readouterr().err


def test_cli_builds_the_built_in_tiny_model():
    from selfplay.cli.serve import load_backend

    args = argparse.Namespace(model="tiny-llama", served_model_name=None, device=None, dtype=None,
                              hourly_usd=0.0, max_batch_rows=8, threads=None)
    llm = load_backend(args)
    assert llm.model == "tiny-llama" and llm.tokenizer.chat_template


@pytest.mark.slow
def test_selfplay_serve_subprocess_end_to_end(tmp_path):
    checkpoint = save_tiny(str(tmp_path / "ckpt"))
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "selfplay", "serve", "--model", checkpoint, "--port", "0",
                             "--served-model-name", "mine", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        line = _read_announce(proc)
        base_url = line.split("listening on ")[1].split()[0]
        client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=30)
        reply = client.chat.completions.create(model="mine", messages=ASK, n=2, max_tokens=5, seed=0)
        assert len(reply.choices) == 2 and reply.usage.completion_tokens >= 2
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="mine", messages=ASK, n=0)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    assert code == 0, proc.stderr.read()


def _read_announce(proc, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "listening on" in line:
            return line
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.stderr.read()}")
    raise AssertionError("serve did not announce its address in time")
