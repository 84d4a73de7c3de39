"""`selfplay generate` with `[model] batch = true` against the mock's Files + Batch APIs: half the online
cost for the same candidates, within the cap, failed lines and expired batches re-queue only what is
missing, and a kill -9 mid-poll resumes by polling the same batch."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from selfplay.servers.testing import MockServer
from tests.gen_helpers import cli, popen, read_candidates, read_summary, write_job

BATCH = "[model]\nbatch = true\nbatch_poll_s = 0.05\n"


def _batch_job(tmp_path, base_url, **kwargs):
    config = write_job(tmp_path, base_url, **kwargs)
    config.write_text(config.read_text().replace("[model]\n", BATCH, 1))
    return config


def _run(config, out):
    return cli("generate", "--config", str(config), "--out", str(out), "--no-progress")


def _strip(candidates):
    return [{k: v for k, v in c.items() if k not in ("cost_usd", "requests", "cache_hits")} for c in candidates]


def test_batch_costs_half_of_online_for_the_same_candidates(tmp_path):
    with MockServer(seed=7) as server:
        online = _run(write_job(tmp_path, server.base_url, tasks=20, k=4, concurrency=64), tmp_path / "online")
        online_stats = server.stats()
        server.reset()
        batch = _run(_batch_job(tmp_path, server.base_url, tasks=20, k=4, concurrency=64), tmp_path / "batch")
        stats = server.stats()
    assert online.returncode == 0 and batch.returncode == 0, batch.stderr
    assert stats["by_endpoint"].get("chat.completions", 0) == 0 and stats["batches"] >= 1
    assert stats["batch_lines"] == 20 and stats["usage"] == online_stats["usage"]
    on, off = read_summary(tmp_path / "online"), read_summary(tmp_path / "batch")
    assert off["cost_usd"] == pytest.approx(on["cost_usd"] / 2)
    assert off["cost_usd"] == pytest.approx((stats["usage"]["prompt_tokens"] * 0.5
                                             + stats["usage"]["completion_tokens"] * 1.0) / 1e6)
    assert _strip(read_candidates(tmp_path / "batch")) == _strip(read_candidates(tmp_path / "online"))


@pytest.mark.parametrize("outcome, faults", [("completed", {"500": 0.2, "429": 0.1}), ("expired", None)])
def test_failed_lines_and_expired_batches_requeue_only_the_missing_requests(tmp_path, outcome, faults):
    with MockServer(seed=3, faults=faults, batch_outcome=outcome) as server:
        result = _run(_batch_job(tmp_path, server.base_url, tasks=12, k=2, concurrency=64), tmp_path / "out")
        stats = server.stats()
    assert result.returncode == 0, result.stderr
    assert read_summary(tmp_path / "out")["tasks_complete"] == 12
    assert stats["batches"] > 1 and stats["batch_lines"] == 12 and stats["duplicate_replies"] == 0


def test_batch_job_stays_within_the_cap_and_exits_3(tmp_path):
    cap = 0.003
    with MockServer(seed=2) as server:
        result = _run(_batch_job(tmp_path, server.base_url, tasks=200, k=4, concurrency=64, budget=f"usd = {cap}"),
                      tmp_path / "out")
        stats = server.stats()
    assert result.returncode == 3, result.stderr
    billed = (stats["usage"]["prompt_tokens"] * 0.5 + stats["usage"]["completion_tokens"] * 1.0) / 1e6
    assert 0 < billed <= cap and read_summary(tmp_path / "out")["cost_usd"] == pytest.approx(billed)


def _pending_batches(out) -> list:
    try:
        with sqlite3.connect(out / "run.db", timeout=5) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'batches_pending'").fetchone()
    except sqlite3.OperationalError:
        return []
    return json.loads(row[0]) if row else []


def test_kill_9_mid_poll_resumes_the_same_batch_without_submitting_twice(tmp_path):
    out = tmp_path / "out"
    with MockServer(seed=5, batch_latency_s=2.0) as server:
        config = write_job(tmp_path, server.base_url, tasks=10, k=2, concurrency=64, budget="usd = 10.0")
        config.write_text(config.read_text().replace("[model]\n", "[model]\nbatch_poll_s = 0.05\n", 1))
        process = popen("generate", "--config", str(config), "--out", str(out), "--no-progress", "--batch")
        deadline = time.monotonic() + 30
        while not _pending_batches(out) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.kill()
        process.wait()
        assert _pending_batches(out) and server.stats()["batch_lines"] == 0, "the kill must land mid-poll"
        result = cli("generate", "--config", str(config), "--out", str(out), "--no-progress", "--batch")
        stats = server.stats()
    assert result.returncode == 0, result.stderr
    assert stats["batches"] == 1 and stats["batch_lines"] == 10 and stats["duplicate_replies"] == 0
    assert read_summary(out)["tasks_complete"] == 10 and _pending_batches(out) == []
