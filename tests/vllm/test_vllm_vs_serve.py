"""`selfplay serve` answers as vLLM does: the same requests sent to the real vLLM server and to `selfplay serve` over
the same checkpoint get the same statuses, error `type` and `code`, choice fields (token ids, log-probs entries,
stop_reason), prompt token ids, `/version`, and LoRA routes. (Differences left on purpose are in
docs/served-policy.md, "selfplay serve vs vLLM".)"""

from __future__ import annotations

import httpx
import pytest

from tests.vllm.server import BASE_NAME

ASK = [{"role": "user", "content": "12+30="}]
SAMPLED = {"model": BASE_NAME, "messages": ASK, "n": 2, "max_tokens": 4, "logprobs": True, "return_token_ids": True,
           "seed": 1}
REFUSED = [({"n": 0}, 400), ({"n": -1}, 400), ({"max_tokens": 0}, 400), ({"temperature": 3}, 400),
           ({"messages": []}, 400), ({"model": "nope"}, 404)]


@pytest.fixture(scope="module")
def serve_root(tiny_base):
    from agents.llm.local import LocalBackend
    from selfplay.servers.serve import BackgroundServer

    with BackgroundServer(LocalBackend.from_path(tiny_base, name=BASE_NAME)) as server:
        yield f"http://{server.host}:{server.port}"


def both(vllm_server, serve_root, method: str, path: str, body: dict | None = None) -> list[httpx.Response]:
    kwargs = {"json": body} if body is not None else {}
    return [getattr(httpx, method)(root + path, timeout=120, **kwargs) for root in (vllm_server.root, serve_root)]


def test_sampled_ids_and_logprobs_have_vllms_shape(vllm_server, serve_root):
    vllm, ours = (r.json() for r in both(vllm_server, serve_root, "post", "/v1/chat/completions", SAMPLED))
    assert ours["prompt_token_ids"] == vllm["prompt_token_ids"]  # the same chat template, the same ids
    assert len(ours["choices"]) == len(vllm["choices"]) == 2
    for theirs, mine in zip(vllm["choices"], ours["choices"]):
        assert {"index", "message", "logprobs", "finish_reason", "stop_reason", "token_ids"} <= set(mine)
        assert len(mine["token_ids"]) == len(mine["logprobs"]["content"])
        assert set(mine["logprobs"]["content"][0]) == set(theirs["logprobs"]["content"][0])
    plain = {k: v for k, v in SAMPLED.items() if k not in ("logprobs", "return_token_ids")}
    vllm, ours = (r.json() for r in both(vllm_server, serve_root, "post", "/v1/chat/completions", plain))
    for choice in vllm["choices"] + ours["choices"]:
        assert choice["token_ids"] is None and choice["logprobs"] is None


@pytest.mark.parametrize("change, status", REFUSED)
def test_refusals_have_vllms_status_type_and_code(vllm_server, serve_root, change, status):
    body = {"model": BASE_NAME, "messages": ASK, "max_tokens": 4, **change}
    answers = both(vllm_server, serve_root, "post", "/v1/chat/completions", body)
    assert [a.status_code for a in answers] == [status, status]
    vllm, ours = (a.json()["error"] for a in answers)
    assert set(ours) == set(vllm) and ours["type"] == vllm["type"] and ours["code"] == vllm["code"] == status


def test_version_and_lora_routes_answer_alike(vllm_server, serve_root, tmp_path, tiny_base):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_base),
                           LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    adapter = str(tmp_path / "adapter")
    model.save_pretrained(adapter)

    assert all(set(a.json()) == {"version"} for a in both(vllm_server, serve_root, "get", "/version"))
    steps = [("/v1/unload_lora_adapter", {"lora_name": "nope"}, 404),
             ("/v1/load_lora_adapter", {"lora_name": "x", "lora_path": str(tmp_path / "missing")}, 404),
             ("/v1/load_lora_adapter", {"lora_name": "ad", "lora_path": adapter}, 200),
             ("/v1/load_lora_adapter", {"lora_name": "ad", "lora_path": adapter}, 400)]
    try:
        for path, body, status in steps:
            answers = both(vllm_server, serve_root, "post", path, body)
            assert [a.status_code for a in answers] == [status, status], (path, body, [a.text for a in answers])
            if status == 200:
                assert answers[0].text == answers[1].text  # "Success: LoRA adapter 'ad' added successfully."
            else:
                assert answers[0].json()["error"]["type"] == answers[1].json()["error"]["type"]
        for listing in both(vllm_server, serve_root, "get", "/v1/models"):
            entry = {m["id"]: m for m in listing.json()["data"]}["ad"]
            assert entry["parent"] == BASE_NAME and entry["root"] == adapter
    finally:
        both(vllm_server, serve_root, "post", "/v1/unload_lora_adapter", {"lora_name": "ad"})
