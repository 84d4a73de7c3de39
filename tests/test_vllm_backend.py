"""The vllm backend's own logic, against the FAKE vLLM in tests/fake_vllm.py (real vLLM is not installable here).

What these tests show: the engine is built with prefix caching (and LoRA when asked), concurrent calls become
ONE generate call with one SamplingParams(n=K, seed, ...) per prompt and token-id prompts, outputs map to
choices / usage / cost, reloads send fresh LoRARequests or rebuild the engine, and a bad prompt fails alone.
What they do not show: that real vLLM behaves like the fake (see docs/backends.md).
"""

import asyncio

import pytest

from agents.llm.types import LLMError, SamplingParams
from agents.llm.vllm_backend import VLLMBackend
from tests.fake_vllm import fake_api
from tests.tiny_model import chat_ids

ASK = [{"role": "user", "content": "what is 2+2?"}]


def make(**kw):
    api = fake_api()
    return VLLMBackend("/models/base", name="base", api=api, **kw), api


def adapter_dir(tmp_path, name):
    where = tmp_path / name
    where.mkdir()
    (where / "adapter_config.json").write_text("{}")
    return str(where)


async def test_engine_args_and_one_generate_call_with_n_and_seed():
    llm, api = make(enable_lora=True, max_lora_rank=16, seed=3, engine_kwargs={"gpu_memory_utilization": 0.5})
    engine = api.instances[0]
    assert engine.model == "/models/base"
    assert engine.engine_args == {"enable_prefix_caching": True, "seed": 3, "enable_lora": True,
                                  "max_lora_rank": 16, "gpu_memory_utilization": 0.5}
    result = await llm.chat(ASK, SamplingParams(n=3, seed=11, temperature=0.7, top_p=0.9, max_tokens=64,
                                                stop=["never"]))
    (call,) = engine.calls
    (params,) = call["sampling_params"]
    assert (params.n, params.seed, params.temperature, params.top_p, params.max_tokens, params.stop) == \
        (3, 11, 0.7, 0.9, 64, ["never"])
    tokenizer = engine.get_tokenizer()
    assert call["prompts"] == [{"prompt_token_ids": chat_ids(tokenizer, ASK)}]  # template once, no second BOS
    assert [c.index for c in result.choices] == [0, 1, 2]
    assert all(c.text.startswith("base|") and c.finish_reason == "stop" for c in result.choices)
    assert result.usage.prompt_tokens == len(chat_ids(tokenizer, ASK))
    assert result.usage.completion_tokens == sum(len(tokenizer.encode(c.text)) + 1 for c in result.choices)
    await llm.aclose()


async def test_concurrent_calls_share_one_generate_and_prefix_cache_counts():
    llm, api = make(hourly_usd=3600.0)
    asks = [[{"role": "user", "content": f"a longer question number {i}, past one cache block"}] for i in range(5)]
    results = await asyncio.gather(*[llm.chat(a, SamplingParams(n=2, seed=i, max_tokens=8)) for i, a in enumerate(asks)])
    engine = api.instances[0]
    assert len(engine.calls) == 1 and len(engine.calls[0]["prompts"]) == 5
    assert [r.choices[0].finish_reason for r in results] == ["length"] * 5
    assert sum(r.cost_usd for r in results) == pytest.approx(llm.meter.total_seconds, rel=1e-6)
    again = await llm.chat(asks[0], SamplingParams(n=1, max_tokens=8))
    assert again.usage.cached_prompt_tokens == (again.usage.prompt_tokens // 16) * 16 > 0
    await llm.aclose()


async def test_lora_reload_sends_a_fresh_lora_request_each_round(tmp_path):
    llm, api = make(enable_lora=True)
    await llm.reload(adapter_dir(tmp_path, "r1"), name="policy-r1")
    first = await llm.chat(ASK, SamplingParams(max_tokens=40))
    await llm.reload(adapter_dir(tmp_path, "r2"))
    second = await llm.chat(ASK, SamplingParams(max_tokens=40))
    engine = api.instances[0]
    lora1, lora2 = engine.calls[0]["lora_request"][0], engine.calls[1]["lora_request"][0]
    assert (lora1.lora_name, lora1.lora_path.endswith("r1")) == ("policy-r1", True)
    assert lora2.lora_int_id != lora1.lora_int_id and lora2.lora_path.endswith("r2")
    assert first.choices[0].text.startswith("policy-r1|") and first.model == "policy-r1"
    assert second.choices[0].text.startswith(lora2.lora_name + "|")
    assert len(api.instances) == 1  # adapters never rebuild the engine
    await llm.aclose()


async def test_checkpoint_reload_rebuilds_the_engine_and_lora_needs_enable_lora(tmp_path):
    llm, api = make()
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "config.json").write_text("{}")
    await llm.reload(str(checkpoint), name="round-1")
    assert [e.model for e in api.instances] == ["/models/base", str(checkpoint)]
    await llm.chat(ASK, SamplingParams(max_tokens=4))
    assert len(api.instances[1].calls) == 1 and not api.instances[0].calls
    with pytest.raises(ValueError, match="enable_lora"):
        await llm.reload(adapter_dir(tmp_path, "r1"))
    with pytest.raises(FileNotFoundError):
        await llm.reload(str(tmp_path / "missing"))
    await llm.aclose()


async def test_a_prompt_the_engine_refuses_fails_alone():
    llm, _ = make()
    ok = [llm.chat([{"role": "user", "content": f"short {i}"}], SamplingParams(max_tokens=8)) for i in range(3)]
    bad = llm.chat([{"role": "user", "content": "x" * 600}], SamplingParams(max_tokens=8))
    *fine, refused = await asyncio.gather(*ok, bad, return_exceptions=True)
    assert all(not isinstance(r, Exception) for r in fine)
    assert isinstance(refused, LLMError) and refused.kind == "bad_request" and "maximum model length" in refused.message
    await llm.aclose()


def test_without_vllm_installed_the_error_says_how_to_get_it():
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"selfplay\[vllm\]"):
            VLLMBackend("/models/base")
    else:  # pragma: no cover - only on a machine with vLLM
        pytest.skip("vLLM is installed here")
