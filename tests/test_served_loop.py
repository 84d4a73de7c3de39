"""`selfplay run` with a served policy against a real `selfplay serve` subprocess on 127.0.0.1: LoRA adapters
published per round, kill -9 mid-generation and mid-publish, a restarted server re-published on resume, and a
server that refuses an adapter (a clear error naming the endpoint, exit 1, nothing lost)."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import httpx
import pytest

from selfplay.core.errors import UserError
from selfplay.config.run import load_run_config
from tests.test_cli_run import rounds_of, selfplay
from tests.test_publish import start_serve, stop
from tests.tiny_model import save_tiny

CONFIG = """
[model]
name = "micro-llama"
backend = "local"
path = "{base}"

[policy]
mode = "served"
url = "{url}"
base_model = "base"
hourly_usd = 3.6

[tasks]
builtin = "addition"
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
require_improvement = false   # mechanics (serving, resume): micro-llama need not learn
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    return save_tiny(str(tmp_path_factory.mktemp("base") / "micro"))


@pytest.fixture()
def server(base):
    proc, url = start_serve(base)
    yield url
    if proc.poll() is None:
        stop(proc)


def write_config(tmp: Path, base: str, url: str, rounds: int = 2, local: bool = False) -> Path:
    text = CONFIG.format(base=base, url=url, rounds=rounds)
    if local:  # the same loop with the policy in this process (full fine-tuning, no server)
        text = text.split("[policy]")[0] + "[tasks]" + text.split("[tasks]")[1]
        text = text.replace(", lora = true, lora_r = 8, lora_alpha = 16", "")
    path = tmp / ("local.toml" if local else "served.toml")
    path.write_text(text)
    return path


def served_models(url: str) -> list[str]:
    return [m["id"] for m in httpx.get(f"{url}/models", timeout=30).json()["data"]]


def paid_twice(out: Path) -> list[str]:
    """Request keys that were sent and paid more than once (a stored reply re-bought)."""
    with sqlite3.connect(out / "run.db") as db:
        rows = db.execute("SELECT key, COUNT(*) FROM reservations WHERE result IS NOT NULL GROUP BY key "
                          "HAVING COUNT(*) > 1").fetchall()
    return [key for key, _ in rows]


def replies(out: Path) -> int:
    with sqlite3.connect(out / "run.db") as db:
        return db.execute("SELECT COUNT(*) FROM reservations WHERE result IS NOT NULL").fetchone()[0]


def adapter_round(name: str) -> int:
    return int(name.split("-")[1])


def test_served_loop_gives_round_records_like_the_local_loop(tmp_path, base, server):
    out = tmp_path / "served"
    result = selfplay("run", str(write_config(tmp_path, base, server)), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    rounds = rounds_of(out)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[1]["samples"] == 12 * 4 and rounds[2]["samples"] == 12 * 4
    for r in rounds:
        assert 0.0 <= r["eval_pass@1"] <= r["eval_pass@k"] <= 1.0
        assert r["cost_usd"] > 0  # the server's hours, for the time it answered this run
        assert "kl_to_cold_start" in r["monitors"] or r["round"] == 0
    adapters = [m for m in served_models(server) if m != "base"]
    assert sorted(adapter_round(m) for m in adapters) == [1, 2]  # round 0 = r-2 unloaded
    assert (out / "checkpoints" / "round-2" / "adapter" / "adapter_config.json").is_file()
    assert (out / "checkpoints" / "round-0" / "model.safetensors").is_file()  # merged: the KL reference
    with sqlite3.connect(out / "run.db") as db:
        models = {json.loads(body)["model"] for (body,) in db.execute("SELECT body FROM candidates")}
    assert {adapter_round(m) for m in models} == {0, 1, 2}  # each round sampled with its own adapter

    local_out = tmp_path / "local"
    local = selfplay("run", str(write_config(tmp_path, base, server, local=True)), "--out", str(local_out),
                     "--no-progress")
    assert local.returncode == 0, local.stderr
    local_rounds = rounds_of(local_out)
    assert [set(r) - {"arm"} for r in local_rounds] == [set(r) - {"arm"} for r in rounds]
    assert [r["samples"] for r in local_rounds[1:]] == [r["samples"] for r in rounds[1:]]


def test_kill_mid_generation_and_mid_publish_then_resume_pays_nothing_twice(tmp_path, base, server):
    config, out = write_config(tmp_path, base, server), tmp_path / "out"
    for crash_at in ("round1:direct:chunk", "round1:published", "round2:direct:chunk"):
        killed = selfplay("run", str(config), "--out", str(out), "--no-progress", crash_at=crash_at)
        assert killed.returncode == -9, (crash_at, killed.stderr)
    with sqlite3.connect(out / "run.db") as db:  # as if killed after the replies were paid, before they were stored
        lost = db.execute("DELETE FROM candidates WHERE round = 2").rowcount
    assert lost > 0
    stored = replies(out)
    resumed = selfplay("run", str(config), "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert paid_twice(out) == []  # the lost candidates came back from the request cache (keys name the adapter)
    assert replies(out) > stored
    rounds = rounds_of(out)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[1]["samples"] == 12 * 4 and rounds[2]["samples"] == 12 * 4
    served = [m for m in served_models(server) if m != "base"]
    assert sorted(adapter_round(m) for m in served) == [1, 2]
    digest_2 = served[[adapter_round(m) for m in served].index(2)]
    with sqlite3.connect(out / "run.db") as db:
        eval_models = {json.loads(b)["model"] for (b,) in db.execute(
            "SELECT body FROM candidates WHERE round = 2 AND workflow = 'eval'")}
    assert eval_models == {digest_2}  # round 2 was evaluated with round 2's adapter, as served now


def test_a_restarted_server_is_republished_on_resume(tmp_path, base):
    proc, url = start_serve(base)
    out = tmp_path / "out"
    try:
        first = selfplay("run", str(write_config(tmp_path, base, url, rounds=1)), "--out", str(out), "--no-progress")
        assert first.returncode == 0, first.stderr
    finally:
        stop(proc)
    proc, url = start_serve(base)  # a new server on another port: no adapters
    try:
        assert served_models(url) == ["base"]
        again = selfplay("run", str(write_config(tmp_path, base, url, rounds=2)), "--out", str(out), "--no-progress")
        assert again.returncode == 0, again.stderr
        assert [r["round"] for r in rounds_of(out)] == [0, 1, 2]
        assert sorted(adapter_round(m) for m in served_models(url) if m != "base") == [1, 2]
        assert paid_twice(out) == []
    finally:
        stop(proc)


def test_a_server_that_refuses_the_adapter_is_a_clear_error_and_nothing_is_lost(tmp_path, base):
    other = save_tiny(str(tmp_path / "other"), name="tiny-llama")  # another base: the adapter cannot load on it
    proc, url = start_serve(other)
    config, out = write_config(tmp_path, base, url, rounds=1), tmp_path / "out"
    try:
        refused = selfplay("run", str(config), "--out", str(out), "--no-progress")
    finally:
        stop(proc)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"POST {url[:-3]}/v1/load_lora_adapter" in refused.stderr and "refused" in refused.stderr
    kept = (out / "checkpoints" / "round-0" / "adapter" / "adapter_model.safetensors").read_bytes()
    proc, url = start_serve(base)
    try:
        fixed = selfplay("run", str(write_config(tmp_path, base, url, rounds=1)), "--out", str(out), "--no-progress")
        assert fixed.returncode == 0, fixed.stderr
    finally:
        stop(proc)
    rounds = rounds_of(out)
    assert [r["round"] for r in rounds] == [0, 1]
    assert rounds[0]["train"] == {"skipped": "checkpoint present"}  # the cold start was not trained again
    assert (out / "checkpoints" / "round-0" / "adapter" / "adapter_model.safetensors").read_bytes() == kept


def test_config_errors_name_the_key_and_the_fix(tmp_path, base):
    config = write_config(tmp_path, base, "http://127.0.0.1:9/v1", rounds=1)
    text = config.read_text()
    cases = [(text.replace('url = "http://127.0.0.1:9/v1"\n', ""), "[policy] url"),
             (text.replace(", lora = true, lora_r = 8, lora_alpha = 16", ""), "add lora = true"),
             (text.replace("hourly_usd = 3.6", "hourly_usdd = 3.6"), "hourly_usdd"),
             (text.replace('mode = "served"', 'mode = "local"').replace(", lora = true, lora_r = 8, lora_alpha = 16",
                                                                       ""), "[policy] base_model"),
             (text.replace('base_model = "base"', 'base_model = "base"\npublish = "restart"'), "restart_command")]
    for bad, words in cases:
        config.write_text(bad)
        with pytest.raises(UserError, match=re.escape(words)):
            load_run_config(config)
    config.write_text(text)  # a valid config, but nothing listens at the url: refused before anything is spent
    result = selfplay("run", str(config), "--out", str(tmp_path / "o"), "--no-progress")
    assert result.returncode == 1 and "127.0.0.1:9/v1/models" in result.stderr, result.stderr
    assert not (tmp_path / "o" / "checkpoints").exists()


RESTART = '''
import os, signal, subprocess, sys, time
port, pidfile, log, checkpoint = sys.argv[1:5]
if os.path.exists(pidfile):
    old = int(open(pidfile).read())
    try:
        os.kill(old, signal.SIGTERM)
        while True:
            os.kill(old, 0)
            time.sleep(0.1)
    except ProcessLookupError:
        pass
proc = subprocess.Popen([sys.executable, "-m", "selfplay", "serve", "--model", checkpoint, "--port", port,
                         "--served-model-name", "base", "--threads", "1"], stdout=open(log, "a"),
                        stderr=subprocess.STDOUT, start_new_session=True)
open(pidfile, "w").write(str(proc.pid))
'''


def test_restart_mode_restarts_the_server_on_each_round_checkpoint(tmp_path, base):
    import os
    import signal
    import socket
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script, pidfile, log = tmp_path / "restart.py", tmp_path / "serve.pid", tmp_path / "serve.log"
    script.write_text(RESTART)
    config = write_config(tmp_path, base, f"http://127.0.0.1:{port}/v1", rounds=1)
    text = config.read_text().replace(", lora = true, lora_r = 8, lora_alpha = 16", "").replace(
        'base_model = "base"', f'base_model = "base"\npublish = "restart"\nrestart_command = "{sys.executable} '
                               f'{script} {port} {pidfile} {log} {{checkpoint}}"\nhealth_timeout_s = 120')
    config.write_text(text)
    out = tmp_path / "out"
    try:
        result = selfplay("run", str(config), "--out", str(out), "--no-progress")
        assert result.returncode == 0, result.stderr + log.read_text()
        rounds = rounds_of(out)
        assert [r["round"] for r in rounds] == [0, 1] and rounds[1]["samples"] == 12 * 4
        served = log.read_text().count("listening on")
        assert served == 2  # round 0 for its eval and round 1's generation, round 1 for its eval
        with sqlite3.connect(out / "run.db") as db:
            keys = {json.loads(b)["model"] for (b,) in db.execute("SELECT body FROM candidates")}
        assert {adapter_round(k) for k in keys} == {0, 1}  # records and cache keys name the round's weights
    finally:
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass


def test_a_run_written_before_policy_existed_resumes_local_and_refuses_a_switch_to_served(tmp_path):
    from selfplay.config.resume import check_resume
    from selfplay.config.run import PINNED, RunConfig
    from selfplay.core.store import RunStore

    local = {"model": {"name": "micro-llama", "backend": "local"}, "tasks": {"builtin": "addition"}}
    before = RunConfig.model_validate(local).model_dump(mode="json")
    del before["policy"]  # config.json of a run from before [policy]
    (tmp_path / "config.json").write_text(json.dumps(before))
    with RunStore(tmp_path) as store:
        store.put_round(0, "done", {})
    check_resume(RunConfig.model_validate(local), tmp_path, PINNED)  # its defaults: mode = "local"
    served = {**local, "policy": {"mode": "served", "url": "http://127.0.0.1:9/v1", "base_model": "b"}}
    with pytest.raises(UserError, match="policy.mode = 'local', but this config says 'served'"):
        check_resume(RunConfig.model_validate(served), tmp_path, PINNED)


def test_a_lora_policy_needs_the_base_as_a_directory(tmp_path, base):
    config = write_config(tmp_path, base, "http://127.0.0.1:9/v1", rounds=1)
    config.write_text(config.read_text().replace(f'path = "{base}"\n', ""))
    with pytest.raises(UserError, match=r"\[model\] path: a LoRA policy trains adapters over the weights"):
        load_run_config(config)
