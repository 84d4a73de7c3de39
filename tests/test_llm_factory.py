"""The LLM factory (`selfplay.pipeline.llm`): each backend kind from a config section, `[model] max_n` reaching
the openai backend (and the Ray workers' plain-data section), prices from the user's overrides, and the one
model loader. Offline: the openai clients are built, never called; vllm is the labelled fake of tests/fake_vllm.py."""

from __future__ import annotations

import asyncio
import json

import pytest

from agents.llm.batch_backend import OpenAIBatchBackend
from agents.llm.local import LocalBackend
from agents.llm.metered import MeteredLLM
from agents.llm.openai_backend import OpenAIBackend
from agents.llm.vllm_backend import VLLMBackend
from agents.money.ledger import BudgetLedger, Caps
from selfplay.config.common import ModelSection
from selfplay.core.errors import UserError
from selfplay.pipeline.continuing import ContinuingLocalBackend
from selfplay.pipeline.llm import (CONTINUE_EXTRA_BODY, Engine, build_backend, build_metered, load_policy_model,
                                   price_table, section_from_spec, section_spec)
from tests.fake_vllm import fake_api


def close(backend) -> None:
    asyncio.run(backend.aclose())


def test_openai_section_gives_the_openai_backend_with_every_key():
    section = ModelSection(name="m", base_url="http://127.0.0.1:9/v1", supports_n=False, stream=True,
                           extra_body={"top_k": 5}, max_attempts=2, timeout_s=7.0)
    backend = build_backend(section, 3)
    try:
        assert type(backend) is OpenAIBackend and backend.model == "m"
        assert backend.supports_n is False and backend.stream is True and backend.extra_body == {"top_k": 5}
        assert backend.retry.max_attempts == 2 and backend._limit._value == 3
        assert str(backend._client.base_url).startswith("http://127.0.0.1:9/v1") and backend._client.timeout == 7.0
    finally:
        close(backend)


def test_max_n_reaches_the_openai_backend_and_the_ray_workers_section():
    section = ModelSection(name="m", base_url="http://127.0.0.1:9/v1", max_n=16)
    backend = build_backend(section, 4)
    try:
        assert backend.max_n == 16
    finally:
        close(backend)
    spec = section_spec(section, 4)
    assert json.loads(json.dumps(spec)) == spec  # plain data: crosses to a Ray worker as is
    back, concurrency = section_from_spec(spec, "http://10.0.0.2:8000/v1")
    assert concurrency == 4 and back == section.model_copy(update={"base_url": "http://10.0.0.2:8000/v1"})
    worker_client = build_backend(back, concurrency)
    try:
        assert worker_client.max_n == 16 and str(worker_client._client.base_url).startswith("http://10.0.0.2:8000")
    finally:
        close(worker_client)


def test_max_n_is_validated_by_the_config():
    with pytest.raises(ValueError):
        ModelSection(name="m", max_n=0)


def test_batch_section_gives_the_batch_backend():
    section = ModelSection(name="m", base_url="http://127.0.0.1:9/v1", batch=True, batch_poll_s=2.0,
                           batch_max_requests=10)
    backend = build_backend(section, 3)
    try:
        assert type(backend) is OpenAIBatchBackend and backend.poll_s == 2.0 and backend.max_requests == 10
    finally:
        close(backend)


def test_a_missing_api_key_names_the_variable_and_where_it_was_configured(monkeypatch):
    monkeypatch.delenv("SELFPLAY_TEST_NO_KEY", raising=False)
    with pytest.raises(UserError, match=r"\[policy\] api_key_env = 'SELFPLAY_TEST_NO_KEY'"):
        build_backend(ModelSection(name="m", api_key_env="SELFPLAY_TEST_NO_KEY"), source="[policy]")


def test_continue_final_adds_the_server_flags_under_the_users_extra_body():
    section = ModelSection(name="m", base_url="http://127.0.0.1:9/v1", extra_body={"add_generation_prompt": True})
    backend = build_backend(section, 1, Engine(continue_final=True))
    try:
        assert backend.extra_body == {**CONTINUE_EXTRA_BODY, "add_generation_prompt": True}
    finally:
        close(backend)


def test_local_section_loads_the_model_and_engine_options_reach_the_backend():
    section = ModelSection(name="tiny-llama", backend="local", hourly_usd=2.0)
    backend = build_backend(section, engine=Engine(seed=5, max_batch_rows=7, batch_window_s=0.25))
    try:
        assert type(backend) is LocalBackend and backend.model == "tiny-llama" and backend.meter.hourly_usd == 2.0
        assert backend._batcher.max_rows == 7 and backend._batcher.window_s == 0.25
        assert backend._unseeded.initial_seed() == 5
    finally:
        close(backend)


def test_local_weights_in_memory_are_served_as_they_are_and_continue_final_is_the_continuing_backend():
    model, tokenizer = load_policy_model("tiny-llama", seed=1)
    backend = build_backend(ModelSection(name="x@round-0", backend="local"),
                            engine=Engine(weights=(model, tokenizer), continue_final=True))
    try:
        assert type(backend) is ContinuingLocalBackend and backend.hf_model is model and backend.tokenizer is tokenizer
        assert backend.model == "x@round-0" and backend._batcher.max_rows == 256  # the backend's own default
    finally:
        close(backend)


def test_vllm_section_builds_the_engine_with_the_options_given():
    api = fake_api()
    section = ModelSection(name="base", backend="vllm", path="micro-llama", enable_lora=True, hourly_usd=3.6,
                           engine_kwargs={"gpu_memory_utilization": 0.4})
    backend = build_backend(section, engine=Engine(seed=3, max_lora_rank=8, vllm_api=api))
    try:
        assert type(backend) is VLLMBackend and backend.model == "base" and backend.model_path == "micro-llama"
        assert backend.seed == 3 and backend.max_lora_rank == 8 and backend.enable_lora
        assert api.instances[0].engine_args["gpu_memory_utilization"] == 0.4
    finally:
        close(backend)
    with pytest.raises(UserError, match="continues step prefixes"):
        build_backend(section, engine=Engine(continue_final=True, vllm_api=api))


def test_prices_come_from_the_users_overrides_and_local_engines_without_one_by_hardware():
    prices = price_table({"my-model": {"input": 1.0, "output": 2.0}})
    ledger = BudgetLedger(Caps())
    priced = build_metered(ModelSection(name="my-model"), _Stub(), prices, ledger, None)
    assert type(priced) is MeteredLLM and priced.price.input == 1.0 and priced.price.output == 2.0
    local = ModelSection(name="my-local", backend="local")
    assert build_metered(local, _Stub(), prices, ledger, None).price is None
    local_priced = local.model_copy(update={"name": "my-model"})
    assert build_metered(local_priced, _Stub(), prices, ledger, None).price.output == 2.0
    assert build_metered(None, _Stub(), None, ledger, "cache").cache == "cache"  # a policy: priced by the hour
    with pytest.raises(UserError, match="no-such-model"):
        build_metered(ModelSection(name="no-such-model"), _Stub(), prices, ledger, None)
    with pytest.raises(UserError, match=r"\[prices\]"):
        price_table({"bad": {"input": 1.0}})


def test_a_metered_subclass_is_built_with_its_options():
    class Counting(MeteredLLM):
        def __init__(self, inner, *, limit: int, **kwargs) -> None:
            super().__init__(inner, **kwargs)
            self.limit = limit

    metered = build_metered(None, _Stub(), None, BudgetLedger(Caps()), None, kind=Counting, limit=3)
    assert type(metered) is Counting and metered.limit == 3 and metered.price is None


def test_the_loader_seeds_tiny_models_and_names_the_source_of_a_bad_name(tmp_path):
    first, _ = load_policy_model("tiny-llama", seed=4)
    again, _ = load_policy_model("tiny-llama", seed=4)
    other, _ = load_policy_model("tiny-llama", seed=5)
    weights = [next(m.parameters()).detach() for m in (first, again, other)]
    assert weights[0].equal(weights[1]) and not weights[0].equal(weights[2])
    with pytest.raises(UserError, match=r"^--model: .*tiny"):
        load_policy_model(str(tmp_path / "missing"), source="--model")


class _Stub:
    model = "stub"
    supports_n = True
