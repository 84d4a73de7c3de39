"""A capped `selfplay generate` spends its cap to the end: at concurrency 1, 64 and 256 under 20% faults
it spends at least cap - 2 x (one request's worst case), never more than the cap (server-billed), exits 3,
and a re-run with the same cap buys nothing new."""

from __future__ import annotations

import sqlite3

import pytest

from selfplay.servers.testing import MockServer
from tests.gen_helpers import cli, read_summary, write_job

FAULTS = {"429": 0.05, "500": 0.1, "malformed": 0.05}  # 20% of attempts fail, retried


def _billed(stats: dict) -> float:
    return (stats["usage"]["prompt_tokens"] * 1.0 + stats["usage"]["completion_tokens"] * 2.0) / 1e6


@pytest.mark.parametrize("concurrency", [1, 64, 256])
def test_capped_job_spends_the_cap_to_the_end_and_a_same_cap_rerun_buys_nothing(tmp_path, concurrency):
    cap = 0.012
    out = tmp_path / "out"
    with MockServer(seed=3, faults=FAULTS, retry_after_ms=1) as server:
        config = write_job(tmp_path, server.base_url, tasks=400, k=4, concurrency=concurrency,
                           budget=f"usd = {cap}", timeout_s=2.0)
        result = cli("generate", "--config", str(config), "--out", str(out), "--no-progress")
        stats = server.stats()
        summary = read_summary(out)
        server.reset()
        rerun = cli("generate", "--config", str(config), "--out", str(out), "--no-progress")
        rerun_stats = server.stats()
    assert result.returncode == 3, result.stderr
    assert "spent $" in result.stderr and "the next request needs up to $" in result.stderr
    assert stats["faults_total"] > 0
    with sqlite3.connect(out / "run.db") as db:
        worst = db.execute("SELECT MAX(worst_usd) FROM reservations").fetchone()[0]
    billed = _billed(stats)
    assert cap - 2 * worst <= billed <= cap
    assert summary["stopped_reason"] == "budget" and summary["cost_usd"] == pytest.approx(billed)
    assert 0 < summary["tasks_complete"] < 400
    if concurrency > 1:
        assert summary["budget_waits"] > 0  # requests waited for settlements instead of stopping the job
    assert rerun.returncode == 3, rerun.stderr
    assert rerun_stats["completions"] == 0 and _billed(rerun_stats) == 0.0
    assert read_summary(out)["cost_usd"] == pytest.approx(billed)
