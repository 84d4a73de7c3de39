"""`selfplay generate` end to end against the mock endpoint: faults, budget cap, kill -9 resume, bad input."""

from __future__ import annotations


import pytest

from selfplay.servers.testing import MockServer
from tests.gen_helpers import cli, kill_generate_mid_job, read_candidates, read_summary, write_job

EVERY_FAULT = {"429": 0.2, "500": 0.2, "timeout": 0.2, "malformed": 0.2, "truncate": 0.2}
VOLATILE = ("requests", "cache_hits", "cost_usd")  # how a candidate was paid for, not what it is


def test_every_task_completes_under_faults_of_every_kind_and_the_summary_is_right(tmp_path):
    with MockServer(faults=EVERY_FAULT, seed=5, hang_s=5) as server:
        config = write_job(tmp_path, server.base_url, tasks=30, k=4, timeout_s=0.5)
        result = cli("generate", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
        stats = server.stats()
    assert result.returncode == 0, result.stderr
    summary = read_summary(tmp_path / "out")
    assert summary["stopped_reason"] == "done"
    assert summary["candidates"] == 120 and summary["tasks_complete"] == 30
    assert summary["errors"] == {}
    assert summary["requests"] == stats["completions"] == 30
    assert summary["prompt_tokens"] == stats["usage"]["prompt_tokens"]
    assert summary["completion_tokens"] == stats["usage"]["completion_tokens"]
    expected_cost = (stats["usage"]["prompt_tokens"] * 1.0 + stats["usage"]["completion_tokens"] * 2.0) / 1e6
    assert summary["cost_usd"] == pytest.approx(expected_cost)
    assert sum(summary["retried_attempts"].values()) == stats["faults_total"] > 0
    assert summary["http_requests"] == stats["by_endpoint"]["chat.completions"]
    candidates = read_candidates(tmp_path / "out")
    assert len(candidates) == 120 and all("\\boxed{" in c["final_answer"] for c in candidates)


def test_budget_cap_is_never_exceeded_at_concurrency_256_and_exits_3(tmp_path):
    cap = 0.02
    with MockServer(seed=2, latency_ms=20) as server:
        config = write_job(tmp_path, server.base_url, tasks=400, k=4, concurrency=256, budget=f"usd = {cap}")
        result = cli("generate", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
        stats = server.stats()
    assert result.returncode == 3, result.stderr
    assert "budget" in result.stderr
    summary = read_summary(tmp_path / "out")
    assert summary["stopped_reason"] == "budget" and summary["budget_cap"] == "usd"
    billed = (stats["usage"]["prompt_tokens"] * 1.0 + stats["usage"]["completion_tokens"] * 2.0) / 1e6
    assert billed <= cap and summary["cost_usd"] <= cap
    assert summary["cost_usd"] == pytest.approx(billed)  # every reply in flight was recorded
    assert 0 < summary["tasks_complete"] < 400


def _comparable(candidates: list[dict]) -> list[dict]:
    return [{k: v for k, v in c.items() if k not in VOLATILE} for c in candidates]


def test_kill_9_then_resume_equals_an_uninterrupted_run_and_pays_nothing_twice(tmp_path):
    with MockServer(seed=9, latency_ms=30) as server:
        config = write_job(tmp_path, server.base_url, tasks=120, k=4, concurrency=8)
        reference = cli("generate", "--config", str(config), "--out", str(tmp_path / "ref"), "--no-progress")
        assert reference.returncode == 0, reference.stderr
        server.reset()

        out = tmp_path / "killed"
        kill_generate_mid_job(config, out, at_least=100, total=480)
        resumed = cli("generate", "--config", str(config), "--out", str(out), "--no-progress")
        stats = server.stats()
    assert resumed.returncode == 0, resumed.stderr
    assert _comparable(read_candidates(out)) == _comparable(read_candidates(tmp_path / "ref"))
    first, again = read_summary(tmp_path / "ref"), read_summary(out)
    assert again["cost_usd"] == pytest.approx(first["cost_usd"])
    assert again["requests"] == first["requests"] == 120
    # Only a request that was on the wire at the kill (its reservation orphaned) can be answered twice.
    assert stats["duplicate_replies"] <= again["orphaned_requests"] <= 8


def test_rerun_of_a_finished_job_sends_nothing(tmp_path):
    with MockServer(seed=1) as server:
        config = write_job(tmp_path, server.base_url, tasks=5, k=2)
        assert cli("generate", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress").returncode == 0
        server.reset()
        again = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress")
        assert again.returncode == 0
        assert server.stats()["by_endpoint"].get("chat.completions", 0) == 0
    assert read_summary(tmp_path / "o")["candidates"] == 10


def test_malformed_toml_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname = 'x'\n")
    result = cli("generate", "--config", str(bad), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "bad.toml" in result.stderr and "TOML" in result.stderr


def test_unknown_config_key_is_an_error(tmp_path):
    config = write_job(tmp_path, "http://127.0.0.1:9/v1")
    config.write_text(config.read_text().replace("k = 4", "kk = 4"))
    result = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "generate.kk" in result.stderr


def test_bad_task_line_names_file_and_line(tmp_path):
    config = write_job(tmp_path, "http://127.0.0.1:9/v1", tasks=3)
    with (tmp_path / "tasks.jsonl").open("a") as handle:
        handle.write('{"id": "x", "prompt": \n')
    result = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "tasks.jsonl:4" in result.stderr


def test_model_without_price_is_an_error_not_zero(tmp_path):
    config = write_job(tmp_path, "http://127.0.0.1:9/v1")
    config.write_text(config.read_text().replace('[prices."mock-model"]', '[prices."other"]'))
    result = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and '[prices."mock-model"]' in result.stderr


def test_unreachable_endpoint_is_a_clear_error(tmp_path):
    config = write_job(tmp_path, "http://127.0.0.1:9/v1")
    result = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "cannot reach" in result.stderr


def test_resume_with_changed_sampling_settings_is_refused(tmp_path):
    with MockServer(seed=1) as server:
        config = write_job(tmp_path, server.base_url, tasks=3, k=2)
        assert cli("generate", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress").returncode == 0
        result = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"), "--k", "3")
    assert result.returncode == 1 and "generate.k" in result.stderr
    assert len(read_candidates(tmp_path / "o")) == 6  # nothing produced was lost


def test_local_backend_is_interchangeable_by_config(tmp_path):
    (tmp_path / "tasks.jsonl").write_text('{"id": "a", "prompt": "What is 1 + 2?", "answer": "3"}\n'
                                          '{"id": "b", "prompt": "What is 2 + 2?", "answer": "4"}\n')
    config = tmp_path / "gen.toml"
    config.write_text('[model]\nname = "micro-llama"\nbackend = "local"\nhourly_usd = 3.6\n'
                      '[generate]\ntasks = "tasks.jsonl"\nk = 3\nmax_tokens = 8\nverifier = "math"\n')
    result = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress")
    assert result.returncode == 0, result.stderr
    summary = read_summary(tmp_path / "o")
    assert summary["candidates"] == 6 and summary["requests"] == 2
    assert summary["cost_usd"] > 0  # priced by hardware time, not a silent $0
    assert summary["completion_tokens"] > 0 and summary["verified"] is not None
