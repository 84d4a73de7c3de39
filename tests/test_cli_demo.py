"""`selfplay demo --quick` end to end: both arms, the table, demo.json and the report (a smoke run: tiny sizes).
The real demo's targets are shown by `make demo` (see README), not asserted here: they take minutes."""

import json

import pytest

from tests.test_cli_run import selfplay


@pytest.mark.timeout(900)
def test_demo_quick_runs_both_arms_and_writes_its_figures(tmp_path):
    out = tmp_path / "demo"
    result = selfplay("demo", "--quick", "--rounds", "1", "--seed", "3", "--out", str(out), "--no-progress",
                      timeout=900)  # under a minute on an idle 2-core machine; minutes when 8 jobs share it
    assert result.returncode == 0, result.stderr
    figures = json.loads((out / "demo.json").read_text())
    assert set(figures) >= {"cold_start", "self_improve", "control"}
    assert len(figures["self_improve"]) == len(figures["control"]) == 1
    assert all(0.0 <= x <= 1.0 for x in [figures["cold_start"], *figures["self_improve"], *figures["control"]])
    assert "self-improve pass@1" in result.stdout and (out / "report.html").is_file()
    # both arms start from the same cold-start checkpoint
    a = (out / "self_improve" / "checkpoints" / "round-0" / "model.safetensors").read_bytes()
    b = (out / "control" / "checkpoints" / "round-0" / "model.safetensors").read_bytes()
    assert a == b
