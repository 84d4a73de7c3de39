"""`selfplay report`: maj@k shown, dollars with enough digits, plots with titles, and a `generate` directory
reported with its real cost and verified count (equal to the job's own summary)."""

from __future__ import annotations

import json

from selfplay.cli import main
from selfplay.pipeline.report import markdown, usd
from selfplay.servers.testing import MockServer
from tests.gen_helpers import cli, write_job

ROUNDS = [{"round": 0, "eval_pass@1": 0.1, "eval_pass@k": 0.3, "eval_maj@k": 0.2, "cost_usd": 0.000042},
          {"round": 1, "eval_pass@1": 0.5, "eval_pass@k": 0.7, "eval_maj@k": 0.6, "cost_usd": 0.0123,
           "yield": 0.4, "samples": 10, "completion_tokens": 100, "verified_tokens": 40}]


def test_dollars_keep_their_significant_digits():
    assert usd(0.000042) == "4.200e-05" and usd(0.0123) == "0.0123" and usd(1234.5) == "1,234.50" and usd(0) == "0.00"


def test_markdown_shows_maj_at_k_and_small_costs():
    text = markdown(ROUNDS, "t")
    assert "held-out maj@k" in text and "| 0.600 |" in text and "4.200e-05" in text and "0.0123" in text


def test_report_of_a_run_dir_writes_titled_plots(tmp_path, capsys):
    from selfplay.core.store import RunStore

    with RunStore(tmp_path) as store:
        for r in ROUNDS:
            store.put_round(r["round"], "done", r)
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert page.count("<img") == 5 and 'alt="held-out accuracy"' in page


def test_report_of_a_generate_dir_has_its_real_cost_and_verified_count(tmp_path):
    with MockServer(seed=1) as server:
        config = write_job(tmp_path, server.base_url, tasks=4, k=2)
        config.write_text(config.read_text().replace("seed = 11", 'seed = 11\nverifier = "math"'))
        assert cli("generate", "--config", str(config), "--out", str(tmp_path / "o"), "--no-progress").returncode == 0
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    result = cli("report", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    assert f"{summary['candidates']} candidates, {summary['verified']} verified" in result.stdout
    assert summary["cost_usd"] > 0 and f"${summary['cost_usd']:.6g}" in result.stdout
    assert f"| {summary['candidates']:,} |" in (tmp_path / "o" / "report.md").read_text()
