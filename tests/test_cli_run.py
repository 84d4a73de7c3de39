"""`selfplay run` end to end on a micro model: two rounds, resume after a kill in each phase, a budget cap
that stops the loop mid-round cleanly, and `selfplay report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gen_helpers import ROOT

CONFIG = """
[model]
name = "micro-llama"
backend = "local"

[local]
hourly_usd = 3.6
max_batch_rows = 64

[tasks]
builtin = "addition"
n_seed = 24
n_train = 16
n_eval = 8

[generate]
k = 4
max_tokens = 12
seed = 5

[train]
cold_start_epochs = 1
settings = {{ lr = 3e-3, batch_size = 8, epochs = 1 }}

[eval]
k = 4

[loop]
rounds = 2
require_improvement = false   # a mechanics test (resume, budget): micro-llama need not learn

[budget]
{budget}
"""


def write_config(tmp: Path, budget: str = "") -> Path:
    path = tmp / "run.toml"
    path.write_text(CONFIG.format(budget=budget))
    return path


def selfplay(*args: str, crash_at: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "SELFPLAY_TORCH_THREADS": "1"}
    env.pop("SELFPLAY_CRASH_AT", None)
    if crash_at:
        env["SELFPLAY_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "selfplay", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def rounds_of(out: Path) -> list[dict]:
    return json.loads((out / "rounds.json").read_text())["rounds"]


def comparable(rounds: list[dict]) -> list[dict]:
    keep = ("round", "eval_pass@1", "eval_pass@k", "eval_maj@k", "samples", "passed", "completion_tokens", "selection")
    return [{k: r.get(k) for k in keep} for r in rounds]


def weights(out: Path, round_: int) -> bytes:
    return (out / "checkpoints" / f"round-{round_}" / "model.safetensors").read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    result = selfplay("run", str(write_config(tmp)), "--out", str(tmp / "out"), "--no-progress")
    assert result.returncode == 0, result.stderr
    return tmp / "out"


def test_two_rounds_end_to_end(reference):
    rounds = rounds_of(reference)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    assert rounds[1]["samples"] == 16 * 4 and rounds[2]["samples"] == 16 * 4
    for r in rounds:
        assert 0.0 <= r["eval_pass@1"] <= r["eval_pass@k"] <= 1.0
        assert r["cost_usd"] > 0  # local compute priced by hardware time
    for name in ("report.md", "report.html", "config.json"):
        assert (reference / name).is_file()
    assert (reference / "checkpoints" / "round-2" / "model.safetensors").is_file()


CRASH_POINTS = ["round1:direct:chunk", "round1:generated", "round1:trained", "round2:eval:chunk"]


def test_kill_in_each_phase_then_resume_equals_an_uninterrupted_run(tmp_path, reference):
    """kill -9 mid-generation, after generation, mid-training (before the checkpoint), mid-evaluation:
    each resume runs into the next crash point; the last one finishes. Same rounds, same weights."""
    config = write_config(tmp_path)
    out = tmp_path / "out"
    for crash_at in CRASH_POINTS:
        killed = selfplay("run", str(config), "--out", str(out), "--no-progress", crash_at=crash_at)
        assert killed.returncode == -9, (crash_at, killed.stderr)
    resumed = selfplay("run", str(config), "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert comparable(rounds_of(out)) == comparable(rounds_of(reference))
    assert weights(out, 2) == weights(reference, 2)


def test_budget_cap_stops_the_loop_mid_round_cleanly(tmp_path):
    config = write_config(tmp_path, budget="tokens = 3000")
    out = tmp_path / "out"
    result = selfplay("run", str(config), "--out", str(out), "--no-progress")
    assert result.returncode == 3, result.stderr
    assert "budget" in result.stderr
    finished = rounds_of(out)
    assert len(finished) < 3 and (out / "report.md").is_file()
    # the same command with a larger cap continues from the recorded state
    again = selfplay("run", str(config), "--out", str(out), "--no-progress", "--set", "budget.tokens=10000000")
    assert again.returncode == 0, again.stderr
    assert [r["round"] for r in rounds_of(out)] == [0, 1, 2]


def test_report_command_rewrites_the_report(reference, tmp_path):
    (reference / "report.md").unlink()
    result = selfplay("report", str(reference))
    assert result.returncode == 0, result.stderr
    assert "held-out pass@1" in (reference / "report.md").read_text()
    assert selfplay("report", str(tmp_path)).returncode == 1


def test_bad_run_config_names_the_key(tmp_path):
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("rounds = 2", "roundz = 2"))
    result = selfplay("run", str(path), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "loop.roundz" in result.stderr


def test_resume_with_another_eval_k_is_refused_and_config_json_untouched(reference):
    before = (reference / "config.json").read_bytes()
    rounds = (reference / "rounds.json").read_bytes()
    config = write_config(reference.parent)  # the reference's own config
    result = selfplay("run", "--config", str(config), "--out", str(reference), "--set", "eval.k=2")
    assert result.returncode == 1 and "eval.k" in result.stderr and "Traceback" not in result.stderr
    assert (reference / "config.json").read_bytes() == before and (reference / "rounds.json").read_bytes() == rounds


def test_feedback_workflow_runs_past_round_1(tmp_path):
    path = write_config(tmp_path)
    text = path.read_text().replace("seed = 5", 'seed = 5\nworkflow = "feedback"\nworkflow_options = { max_attempts = 2 }')
    path.write_text(text.replace("n_train = 16", "n_train = 4").replace("rounds = 2", "rounds = 1"))
    result = selfplay("run", "--config", str(path), "--out", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 0, result.stderr
    rounds = rounds_of(tmp_path / "out")
    assert [r["round"] for r in rounds] == [0, 1] and rounds[1]["samples"] == 4 * 4
