"""Runtime LoRA on a real vLLM server: an adapter trained and saved by our trainer (peft, all linear layers) is
loaded with `/v1/load_lora_adapter`, listed by `/v1/models` with its parent, answers with the adapter's weights
(log-probs equal to a teacher-forced pass of the peft model), and is gone after `/v1/unload_lora_adapter`."""

from __future__ import annotations

import httpx
import pytest
import torch

from agents.llm.vllm_server import (ServedModelSwitcher, VLLMServerError, load_lora_adapter, served_models,
                                    unload_lora_adapter)
from tests.vllm.server import BASE_NAME
from tests.vllm.test_vllm_sampling import ASK, LOGPROB_TOLERANCE, teacher_forced_logprobs


@pytest.fixture(scope="module")
def trained_adapter(tiny_base, tmp_path_factory):
    """(adapter dir, peft model): 30 SFT steps of LoRA r=16 on one answer, so the adapter changes the outputs."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from trainer.config import TrainConfig
    from trainer.lora import apply_lora
    from trainer.sft import train_sft

    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    config = TrainConfig(lora=True, lora_r=16, lora_alpha=32, lr=1e-2, max_steps=30, batch_size=4, progress="off")
    model = apply_lora(AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32), config)
    rows = [{"messages": [*ASK, {"role": "assistant", "content": "42"}]}] * 8
    train_sft(model, tokenizer, rows, config)
    out = str(tmp_path_factory.mktemp("adapter") / "round-1")
    model.save_pretrained(out)
    return out, model.eval(), tokenizer


def chat(url: str, model: str, **kw) -> httpx.Response:
    body = {"model": model, "messages": ASK, "max_tokens": 8, "temperature": 0.0, "logprobs": True,
            "return_token_ids": True, **kw}
    return httpx.post(f"{url}/chat/completions", json=body, timeout=120)


def test_load_serve_and_unload_an_adapter_from_our_trainer(vllm_server, trained_adapter):
    path, peft_model, tokenizer = trained_adapter
    url = vllm_server.url
    load_lora_adapter(url, "round-1", path)
    try:
        listed = {m["id"]: m for m in vllm_server.models()}
        assert listed["round-1"]["parent"] == BASE_NAME and listed["round-1"]["root"] == path
        assert listed[BASE_NAME]["parent"] is None

        tuned = chat(url, "round-1").json()["choices"][0]
        base = chat(url, BASE_NAME).json()["choices"][0]
        assert tuned["message"]["content"].startswith("42")  # the trained answer, greedy
        assert tuned["token_ids"] != base["token_ids"]

        sampled = chat(url, "round-1", temperature=1.0, max_tokens=16, n=3, seed=1).json()
        prompt = sampled["prompt_token_ids"]
        for choice in sampled["choices"]:
            served = torch.tensor([entry["logprob"] for entry in choice["logprobs"]["content"]])
            expected = teacher_forced_logprobs(peft_model, prompt, choice["token_ids"])
            assert (expected - served).abs().max().item() < LOGPROB_TOLERANCE
    finally:
        unload_lora_adapter(url, "round-1")
    assert "round-1" not in served_models(url)
    gone = chat(url, "round-1")
    assert gone.status_code == 404 and "round-1" in gone.json()["error"]["message"]


def test_refusals_name_the_adapter(vllm_server, tmp_path):
    url = vllm_server.url
    with pytest.raises(VLLMServerError, match="unload_lora_adapter: HTTP 404"):
        unload_lora_adapter(url, "never-loaded")
    with pytest.raises(VLLMServerError, match="load_lora_adapter: HTTP"):
        load_lora_adapter(url, "missing", str(tmp_path / "no-such-adapter"))
    assert served_models(url) == [BASE_NAME]


def test_switcher_loads_the_new_round_then_unloads_the_old(vllm_server, trained_adapter):
    path = trained_adapter[0]
    switcher = ServedModelSwitcher(vllm_server.url, prefix="sw")
    try:
        assert switcher.switch(1, path) == "sw-1"
        assert switcher.switch(2, path) == "sw-2"
        assert served_models(vllm_server.url) == [BASE_NAME, "sw-2"]
    finally:
        unload_lora_adapter(vllm_server.url, switcher.current)
