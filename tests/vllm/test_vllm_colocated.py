"""`[policy] mode = "colocated"` on a real in-process vLLM engine (`vllm.LLM`, the CPU build): `selfplay run` trains a
LoRA adapter per round here and samples and evaluates each round through the same engine with a fresh
`LoRARequest`; the candidates carry vLLM's sampled token ids and their log-probs."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from tests.test_cli_run import rounds_of, selfplay
from tests.vllm.server import finished

CONFIG = """
[model]
name = "tiny-llama"
backend = "vllm"
path = "{base}"

[policy]
mode = "colocated"
hourly_usd = 3.6
engine_kwargs = {{ dtype = "float32", gpu_memory_utilization = 0.1, max_model_len = 512 }}

[tasks]
builtin = "addition"
style = "short"
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


@pytest.mark.timeout(1200)
def test_colocated_loop_on_a_real_vllm_engine(tmp_path, tiny_base, monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # else vLLM reserves 0.92 of the machine's memory
    config = tmp_path / "colocated.toml"
    config.write_text(CONFIG.format(base=tiny_base))
    out = tmp_path / "out"
    result = selfplay("run", str(config), "--out", str(out), "--no-progress", timeout=1100)
    assert finished(result), result.stderr[-4000:]
    rounds = rounds_of(out)
    assert [r["round"] for r in rounds] == [0, 1, 2] and rounds[1]["samples"] == 6 * 2
    assert rounds[2]["cost_usd"] > 0  # the engine's hours, measured per batch
    with sqlite3.connect(out / "run.db") as db:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM candidates")]
    assert {int(b["model"].split("-")[1]) for b in bodies} == {0, 1, 2}  # each round's own LoRARequest
    for body in bodies:
        assert body["completion_token_ids"] and len(body["completion_logprobs"]) == len(body["completion_token_ids"])
    assert os.path.isdir(out / "checkpoints" / "round-2" / "adapter")
