"""The openai backend asks for vLLM's sampled token ids and log-probs by itself when `/v1/models` says the server is
vLLM (`owned_by: "vllm"`), never otherwise unless told; `extra_body` still wins. (Against real vLLM: tests/vllm.)"""

from agents.llm.openai_backend import SAMPLED_TOKENS_BODY, OpenAIBackend, is_vllm
from agents.llm.types import SamplingParams
from selfplay.servers.testing import MockServer

ASK = [{"role": "user", "content": "What is 2 + 3?"}]


def test_a_vllm_listing_is_recognised_by_its_owner():
    assert is_vllm([{"id": "base", "owned_by": "vllm"}, {"id": "round-1", "owned_by": "vllm", "parent": "base"}])
    assert not is_vllm([{"id": "gpt-4o", "owned_by": "openai"}])
    assert not is_vllm([])


async def test_auto_detection_reads_the_models_listing_once_before_the_first_request():
    with MockServer() as server:  # the mock lists its models as owned_by "selfplay-mock": not vLLM
        backend = OpenAIBackend("mock-model", base_url=server.base_url, api_key="x")
        assert backend.sampled_tokens is None
        result = await backend.chat(ASK, SamplingParams(n=2, max_tokens=16, seed=1))
        await backend.aclose()
    assert backend.sampled_tokens is False and len(result.choices) == 2
    assert "return_token_ids" not in backend._extra_body()


async def test_a_listing_without_vllm_leaves_it_to_the_version_probe():
    with MockServer() as server:
        backend = OpenAIBackend("mock-model", base_url=server.base_url, api_key="x")
        assert "mock-model" in await backend.list_models()
        assert backend.sampled_tokens is None
        await backend.chat(ASK, SamplingParams(max_tokens=8))
        await backend.aclose()
        assert server.stats()["requests"] == 2  # /v1/models and one chat: the /version probe is not under /v1
    assert backend.sampled_tokens is False


async def test_selfplay_serve_answers_version_and_sends_ids_and_logprobs_as_vllm_does(tmp_path):
    from agents.llm.local import LocalBackend
    from selfplay.servers.serve import BackgroundServer
    from tests.tiny_model import chat_ids, tiny_pair

    model, tokenizer = tiny_pair()
    with BackgroundServer(LocalBackend(model, tokenizer, name="tiny")) as server:
        backend = OpenAIBackend("tiny", base_url=f"http://{server.host}:{server.port}/v1", api_key="x")
        result = await backend.chat(ASK, SamplingParams(n=3, max_tokens=6, seed=2))
        await backend.aclose()
        import httpx

        raw = httpx.post(f"http://{server.host}:{server.port}/v1/chat/completions", timeout=60, json={
            "model": "tiny", "messages": ASK, "max_tokens": 4, "logprobs": True, "return_token_ids": True}).json()
    assert backend.sampled_tokens is True
    for choice in result.choices:
        assert choice.token_ids and len(choice.logprobs) == len(choice.token_ids)
    assert raw["prompt_token_ids"] == chat_ids(tokenizer, ASK)
    entry = raw["choices"][0]["logprobs"]["content"][0]
    assert set(entry) == {"token", "logprob", "bytes", "top_logprobs"} and entry["top_logprobs"] == []
    assert len(raw["choices"][0]["logprobs"]["content"]) == len(raw["choices"][0]["token_ids"])


def test_asked_for_when_told_and_extra_body_wins():
    told = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", sampled_tokens=True,
                         extra_body={"logprobs": False, "top_k": 5})
    assert told._extra_body() == {**SAMPLED_TOKENS_BODY, "logprobs": False, "top_k": 5}
    never = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", sampled_tokens=False)
    assert never._extra_body() == {}
