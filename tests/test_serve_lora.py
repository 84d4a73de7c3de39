"""`selfplay serve`'s runtime LoRA API (vLLM's): load / sample with `model=<adapter>` / unload, and its errors."""

import httpx
import openai
import pytest
import torch

from agents.llm.local import LocalBackend
from selfplay.servers.serve import BackgroundServer
from tests.tiny_model import chat_ids, greedy_ids, tiny_pair, use_one_thread

use_one_thread()
ASK = [{"role": "user", "content": "what is 2+2?"}]


def make_adapter(out_dir: str, seed: int = 1, scale: float = 0.5) -> str:
    """A peft LoRA adapter over the tiny model with random (non-zero) B matrices, so its outputs differ."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny_pair()
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    peft_model.save_pretrained(out_dir)
    return out_dir


def reference_text(adapter_dir: str | None, max_tokens: int) -> str:
    """Greedy text of a fresh in-process model (with the adapter through peft, if given)."""
    model, tokenizer = tiny_pair()
    if adapter_dir:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir).eval()
    ids = greedy_ids(model, chat_ids(tokenizer, ASK), max_tokens, tokenizer.eos_token_id)
    return tokenizer.decode(ids, skip_special_tokens=True)


@pytest.fixture()
def served():
    model, tokenizer = tiny_pair()
    with BackgroundServer(LocalBackend(model, tokenizer, name="tiny")) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=30)
        root = f"http://{server.host}:{server.port}"
        yield root, client


def greedy(client, model: str, max_tokens: int = 12) -> str:
    reply = client.chat.completions.create(model=model, messages=ASK, max_tokens=max_tokens, temperature=0)
    assert reply.model == model
    return reply.choices[0].message.content


def test_load_sample_unload_like_vllm(served, tmp_path):
    root, client = served
    adapter = make_adapter(str(tmp_path / "a1"))
    base_before = greedy(client, "tiny")
    assert base_before == reference_text(None, 12)

    loaded = httpx.post(f"{root}/v1/load_lora_adapter", json={"lora_name": "round-1", "lora_path": adapter})
    assert loaded.status_code == 200 and "round-1" in loaded.text
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny", "round-1"]
    assert models[1].model_extra["parent"] == "tiny" and models[1].model_extra["root"] == adapter

    with_adapter = greedy(client, "round-1")
    assert with_adapter == reference_text(adapter, 12)
    assert with_adapter != base_before
    assert greedy(client, "tiny") == base_before  # the base model's replies are unchanged

    completion = client.completions.create(model="round-1", prompt="2 + 2 =", max_tokens=4, temperature=0)
    assert completion.model == "round-1" and isinstance(completion.choices[0].text, str)

    second = make_adapter(str(tmp_path / "a2"), seed=2)
    assert httpx.post(f"{root}/v1/load_lora_adapter",
                      json={"lora_name": "round-2", "lora_path": second}).status_code == 200
    assert greedy(client, "round-2") == reference_text(second, 12)
    assert greedy(client, "round-1") == with_adapter

    gone = httpx.post(f"{root}/v1/unload_lora_adapter", json={"lora_name": "round-1"})
    assert gone.status_code == 200
    with pytest.raises(openai.NotFoundError, match="round-1"):
        greedy(client, "round-1")
    assert [m.id for m in client.models.list().data] == ["tiny", "round-2"]
    assert greedy(client, "round-2") == reference_text(second, 12)

    assert httpx.post(f"{root}/v1/unload_lora_adapter", json={"lora_name": "round-2"}).status_code == 200
    assert greedy(client, "tiny") == base_before  # even after the last adapter is gone
    again = httpx.post(f"{root}/v1/load_lora_adapter", json={"lora_name": "round-1", "lora_path": adapter})
    assert again.status_code == 200 and greedy(client, "round-1") == with_adapter


@pytest.mark.parametrize("route, body, status, words", [
    ("load", {"lora_name": "x"}, 400, "must be provided"),
    ("load", {"lora_name": "x", "lora_path": "/no/such/adapter"}, 404, "No adapter found for /no/such/adapter"),
    ("load", {"lora_name": "tiny", "lora_path": "ADAPTER"}, 400, "already been loaded"),
    ("unload", {"lora_name": "nope"}, 404, "'nope' cannot be found"),
    ("unload", {}, 400, "needs to be provided"),
])
def test_errors_are_vllm_shaped(served, tmp_path, route, body, status, words):
    root, _ = served
    if body.get("lora_path") == "ADAPTER":
        body = {**body, "lora_path": make_adapter(str(tmp_path / "a"))}
    answer = httpx.post(f"{root}/v1/{route}_lora_adapter", json=body)
    assert answer.status_code == status
    assert words in answer.json()["error"]["message"]


def test_a_broken_adapter_is_a_400_and_the_server_keeps_serving(served, tmp_path):
    root, client = served
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{\"peft_type\": \"LORA\", \"r\": 4}")
    answer = httpx.post(f"{root}/v1/load_lora_adapter", json={"lora_name": "bad", "lora_path": str(broken)})
    assert answer.status_code == 400 and "Loading lora bad failed" in answer.json()["error"]["message"]
    assert [m.id for m in client.models.list().data] == ["tiny"]
    assert greedy(client, "tiny") == reference_text(None, 12)


def test_concurrent_requests_for_base_and_adapters_never_mix_weights(served, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    root, client = served
    for r in (1, 2):
        path = make_adapter(str(tmp_path / f"a{r}"), seed=r)
        assert httpx.post(f"{root}/v1/load_lora_adapter",
                          json={"lora_name": f"r{r}", "lora_path": path}).status_code == 200
    expected = {m: greedy(client, m) for m in ("tiny", "r1", "r2")}
    assert len(set(expected.values())) == 3
    order = ["tiny", "r1", "r2"] * 3
    with ThreadPoolExecutor(len(order)) as pool:
        got = list(pool.map(lambda m: greedy(client, m), order))
    assert got == [expected[m] for m in order]
