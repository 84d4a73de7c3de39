"""`[policy] mode = "colocated"`: the loop trains LoRA rounds here and samples through the in-process `vllm` backend
with a `LoRARequest` per round. vLLM is NOT installed here: the engine is the labelled FAKE of tests/fake_vllm.py
(its answers name the adapter that produced them), so this checks the wiring, never vLLM itself."""

from __future__ import annotations

import asyncio

import pytest

from selfplay.core.errors import UserError
from selfplay.jobs.loop import RunJob
from selfplay.policy import ColocatedPolicy
from selfplay.config.run import load_run_config
from tests.fake_vllm import fake_api
from tests.tiny_model import save_tiny

CONFIG = """
[model]
name = "micro-llama"
backend = "vllm"
path = "{base}"

[policy]
mode = "colocated"
hourly_usd = 3.6
engine_kwargs = {{ gpu_memory_utilization = 0.4 }}

[tasks]
builtin = "addition"
n_seed = 16
n_train = 6
n_eval = 4

[generate]
k = 2
max_tokens = 8
seed = 3

[train]
cold_start_epochs = 1
settings = {{ lr = 3e-3, batch_size = 8, epochs = 1, lora = true, lora_r = 8, lora_alpha = 16 }}

[eval]
k = 2

[monitors]
logp_samples = 0

[loop]
rounds = 2
"""


def test_colocated_loop_serves_each_round_with_its_own_lora_request(tmp_path, monkeypatch):
    base = save_tiny(str(tmp_path / "base"))
    path = tmp_path / "run.toml"
    path.write_text(CONFIG.format(base=base))
    api = fake_api()
    monkeypatch.setattr(ColocatedPolicy, "vllm_api", api)
    out = tmp_path / "out"
    rounds = asyncio.run(RunJob(load_run_config(path), out).run())
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[1]["samples"] == 6 * 2
    assert len(api.instances) == 1  # one engine for the whole run: adapters never rebuild it
    engine = api.instances[0]
    assert engine.model == base
    assert engine.engine_args["enable_lora"] is True and engine.engine_args["max_lora_rank"] == 8
    assert engine.engine_args["gpu_memory_utilization"] == 0.4
    used = [call["lora_request"][0] for call in engine.calls]
    names = list(dict.fromkeys(r.lora_name for r in used))
    assert [int(n.split("-")[1]) for n in names] == [0, 1, 2]  # eval 0 | gen 1 + eval 1 | gen 2 + eval 2
    assert len({r.lora_int_id for r in used}) == 3  # a fresh id per round (vLLM caches adapters by id)
    for request in used:
        round_ = request.lora_name.split("-")[1]
        assert request.lora_path == str((out / "checkpoints" / f"round-{round_}" / "adapter").resolve())
    assert rounds[2]["cost_usd"] > 0


def test_colocated_needs_lora_and_refuses_server_keys(tmp_path):
    base = save_tiny(str(tmp_path / "base"))
    path = tmp_path / "run.toml"
    text = CONFIG.format(base=base)
    for bad, words in ((text.replace(", lora = true, lora_r = 8, lora_alpha = 16", ""), "add lora = true"),
                       (text.replace('mode = "colocated"', 'mode = "colocated"\nurl = "http://x/v1"'),
                        "[policy] url: has no effect")):
        path.write_text(bad)
        with pytest.raises(UserError, match=words.replace("[", r"\[").replace("]", r"\]")):
            load_run_config(path)


def test_without_vllm_colocated_is_refused_before_anything_is_spent(tmp_path):
    base = save_tiny(str(tmp_path / "base"))
    path = tmp_path / "run.toml"
    path.write_text(CONFIG.format(base=base))
    with pytest.raises(UserError, match="colocated.*vllm"):
        asyncio.run(RunJob(load_run_config(path), tmp_path / "out").run())
    assert not (tmp_path / "out" / "checkpoints").exists()
