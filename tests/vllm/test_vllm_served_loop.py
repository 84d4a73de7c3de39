"""`selfplay run` with `[policy] mode = "served"` against a real vLLM server: each round's LoRA adapter (trained
here by our trainer) published over vLLM's runtime LoRA API, sampling and eval through the `openai` backend with
vLLM's sampled token ids and log-probs stored on the candidates; kill -9 mid-generation and mid-publish, then the
same command: nothing paid twice; vLLM killed and restarted (its runtime adapters lost): the resumed run publishes
again and goes on."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.test_cli_run import rounds_of, selfplay
from tests.vllm.server import finished
from tests.test_served_loop import adapter_round, paid_twice, replies
from tests.vllm.server import BASE_NAME

CONFIG = """
[model]
name = "tiny-llama"
backend = "local"
path = "{base}"

[policy]
mode = "served"
url = "{url}"
base_model = "{base_name}"
hourly_usd = 3.6

[tasks]
builtin = "addition"
style = "short"
n_seed = 24
n_train = 12
n_eval = 8

[generate]
k = 4
max_tokens = 10
seed = 5

[train]
cold_start_epochs = 1
settings = {{ lr = 3e-3, batch_size = 8, epochs = 1, lora = true, lora_r = 8, lora_alpha = 16 }}

[eval]
k = 4

[monitors]
logp_samples = 8

[loop]
rounds = {rounds}
"""
RUN_TIMEOUT_S = 600


def write_config(tmp: Path, base: str, url: str, rounds: int) -> Path:
    path = tmp / f"served-{rounds}.toml"
    path.write_text(CONFIG.format(base=base, url=url, base_name=BASE_NAME, rounds=rounds))
    return path


def run(config: Path, out: Path, crash_at: str | None = None):
    return selfplay("run", str(config), "--out", str(out), "--no-progress", crash_at=crash_at, timeout=RUN_TIMEOUT_S)


def adapters_served(server) -> list[int]:
    return sorted(adapter_round(m) for m in server.model_ids() if m != BASE_NAME)


def candidate_bodies(out: Path, where: str = "1 = 1") -> list[dict]:
    with sqlite3.connect(out / "run.db") as db:
        return [json.loads(body) for (body,) in db.execute(f"SELECT body FROM candidates WHERE {where}")]


@pytest.mark.timeout(2400)
def test_served_loop_on_vllm_kill_resume_and_restart(tmp_path, tiny_base, vllm_server):
    out = tmp_path / "out"
    two = write_config(tmp_path, tiny_base, vllm_server.url, rounds=2)
    for crash_at in ("round1:published", "round2:direct:chunk"):  # mid-publish, then mid-generation
        killed = run(two, out, crash_at)
        assert killed.returncode == -9, (crash_at, killed.stderr[-3000:])
    with sqlite3.connect(out / "run.db") as db:  # as if killed after round 2's replies were paid, not stored
        lost = db.execute("DELETE FROM candidates WHERE round = 2").rowcount
    assert lost > 0
    stored = replies(out)
    resumed = run(two, out)
    assert finished(resumed), resumed.stderr[-3000:]
    assert replies(out) > stored
    assert paid_twice(out) == []  # every stored reply came back from the request cache, none bought again

    rounds = rounds_of(out)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[1]["samples"] == 12 * 4 and rounds[2]["samples"] == 12 * 4
    for r in rounds:
        assert 0.0 <= r["eval_pass@1"] <= r["eval_pass@k"] <= 1.0
    assert adapters_served(vllm_server) == [1, 2]  # round 0's adapter unloaded (R-2)
    bodies = candidate_bodies(out)
    assert {adapter_round(b["model"]) for b in bodies} == {0, 1, 2}  # each round sampled with its own adapter
    sampled = [b for b in bodies if b.get("completion_token_ids")]
    assert len(sampled) == len(bodies)  # vLLM's sampled ids on every candidate (asked for automatically)
    assert all(len(b["completion_logprobs"]) == len(b["completion_token_ids"]) for b in sampled)

    vllm_server.kill()  # a crash of the server: runtime adapters are gone after the restart
    vllm_server.start()
    assert adapters_served(vllm_server) == []
    again = run(write_config(tmp_path, tiny_base, vllm_server.url, rounds=3), out)
    assert finished(again), again.stderr[-3000:]
    assert [r["round"] for r in rounds_of(out)] == [0, 1, 2, 3]
    assert adapters_served(vllm_server) == [2, 3]  # round 2 published again on resume, then round 3
    assert paid_twice(out) == []
    eval_3 = {b["model"] for b in candidate_bodies(out, "round = 3 AND workflow = 'eval'")}
    assert {adapter_round(m) for m in eval_3} == {3}  # eval through vLLM with round 3's adapter
