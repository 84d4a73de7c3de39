"""`selfplay generate` with each workflow, a verifier and adaptive K, end to end against the mock endpoint,
and a kill -9 in the middle of multi-turn trajectories followed by a resume that pays no turn twice."""

from __future__ import annotations

import json

import pytest

from selfplay.servers.testing import MockServer
from tests.gen_helpers import cli, kill_generate_mid_job, read_candidates, read_summary
from tests.test_cli_generate import _comparable
from tests.test_workflow_mock import SCRIPT

CONFIG = """
[model]
name = "policy"
base_url = "{base_url}"
timeout_s = 5
[prices.policy]
input = 1.0
output = 2.0
[prices.critic]
input = 0.5
output = 0.5
[generate]
tasks = "tasks.jsonl"
k = {k}
max_tokens = 64
seed = 3
concurrency = 8
workflow = "{workflow}"
verifier = "math"
{extra}
[budget]
usd = 5.0
"""


def job(tmp, base_url, workflow, tasks, *, k=2, extra=""):
    (tmp / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    path = tmp / "gen.toml"
    path.write_text(CONFIG.format(base_url=base_url, workflow=workflow, k=k, extra=extra))
    return path


def run(config, out):
    result = cli("generate", "--config", str(config), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    return read_summary(out), read_candidates(out)


@pytest.fixture(scope="module")
def server():
    with MockServer(SCRIPT) as running:
        yield running


def test_direct_with_adaptive_k_stops_after_enough_verified(tmp_path, server):
    tasks = [{"id": f"a{i}", "prompt": f"What is {i} + 3?", "answer": str(i + 3)} for i in range(2, 6)]
    config = job(tmp_path, server.base_url, "direct", tasks, k=2,
                 extra="k_max = 8\nstop_after_verified = 3\nbatch = 2")
    summary, candidates = run(config, tmp_path / "o")
    # the cycle rule makes every other sample right: 2 samples -> 1 pass, then batches of 2 until 3 passes
    assert summary["verified"] == 12 and summary["candidates"] == 24
    assert summary["samples_per_solved_task"] == 6
    assert summary["yield"] == pytest.approx(0.5)
    assert summary["per_workflow"]["direct"]["verified"] == 12


def test_self_refine_with_a_critic_model(tmp_path, server):
    tasks = [{"id": "r1", "prompt": "Compute 3*4.", "answer": "12"}]
    config = job(tmp_path, server.base_url, "self_refine", tasks,
                 extra='[generate.workflow_options]\ncritic_model = "critic"\nmax_rounds = 2')
    summary, candidates = run(config, tmp_path / "o")
    assert summary["verified"] == 2 and all("12" in c["final_answer"] for c in candidates)
    assert all(c["stop_reason"] == "accepted" for c in candidates)


def test_tool_use_runs_the_models_code_in_the_sandbox(tmp_path, server):
    tasks = [{"id": "m1", "prompt": "Compute 6 * 7 with python.", "answer": "42"}]
    summary, candidates = run(job(tmp_path, server.base_url, "tool_use", tasks), tmp_path / "o")
    assert summary["verified"] == 2
    tool_turns = [m for m in candidates[0]["messages"] if m["role"] == "tool"]
    assert tool_turns and tool_turns[0]["content"].strip().startswith("42")


def test_feedback_feeds_the_verifiers_reason_back(tmp_path, server):
    tasks = [{"id": "s1", "prompt": "What is 9 - 3?", "answer": "6"}]
    summary, candidates = run(job(tmp_path, server.base_url, "feedback", tasks), tmp_path / "o")
    assert summary["verified"] == 2
    assert all(c["turns"] == 2 for c in candidates)


def test_bad_workflow_options_are_refused_before_spending(tmp_path, server):
    tasks = [{"id": "s1", "prompt": "What is 9 - 3?", "answer": "6"}]
    config = job(tmp_path, server.base_url, "self_refine", tasks, extra="[generate.workflow_options]\nmax_round = 2")
    result = cli("generate", "--config", str(config), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "max_round" in result.stderr


def test_kill_9_mid_trajectory_then_resume_pays_no_turn_twice(tmp_path):
    tasks = [{"id": f"s{i}", "prompt": f"What is {i + 10} - {i}?", "answer": "10"} for i in range(60)]
    with MockServer(SCRIPT, latency_ms=40) as server:
        config = job(tmp_path, server.base_url, "feedback", tasks)
        reference, _ = run(config, tmp_path / "ref")
        server.reset()
        out = tmp_path / "killed"
        kill_generate_mid_job(config, out, at_least=30, total=120)
        again, _ = run(config, out)
        stats = server.stats()
    assert _comparable(read_candidates(out)) == _comparable(read_candidates(tmp_path / "ref"))
    assert again["cost_usd"] == pytest.approx(reference["cost_usd"])
    assert again["requests"] == reference["requests"]
    assert stats["duplicate_replies"] <= again["orphaned_requests"]


JUDGE_SCRIPT = {"models": ["policy", "judge"], "rules": [
    {"name": "judge-good", "model": "judge", "contains": "boxed{7}",
     "reply": '{"reasons": "right: 3 + 4 = 7", "score": 9}'},
    {"name": "judge-bad", "model": "judge", "reply": '{"reasons": "wrong sum", "score": 2}'},
    {"name": "add-k", "match": r"What is (\d+) \+ (\d+)", "pick": "cycle",
     "replies": [r"\boxed{{add:1,2}}", r"\boxed{{mul:1,2}}"]},
]}


def test_an_ai_feedback_judge_as_the_verifier_is_priced_and_budgeted(tmp_path):
    tasks = [{"id": "open1", "prompt": "What is 3 + 4?"}]  # no reference answer: only the judge can decide
    extra = ('[judge]\nname = "judge"\nbase_url = "{url}"\nrubric = "Is the arithmetic right?"\n'
             '[prices.judge]\ninput = 10.0\noutput = 10.0\n')
    with MockServer(JUDGE_SCRIPT) as server:
        config = job(tmp_path, server.base_url, "direct", tasks, k=4)
        text = config.read_text().replace('verifier = "math"', 'verifier = "judge"')
        config.write_text(text.replace("[budget]", extra.format(url=server.base_url) + "[budget]"))
        summary, candidates = run(config, tmp_path / "o")
        stats = server.stats()
    assert summary["verified"] == 2 and summary["candidates"] == 4  # 3+4=7 passes, 3*4=12 fails
    assert stats["rules"]["judge-good"] + stats["rules"]["judge-bad"] >= 2  # identical answers judged once
    judge_cost = summary["cost_usd"] - summary["per_workflow"]["direct"]["cost_usd"]
    assert judge_cost > 0  # judge calls are priced and counted in the run's ledger


def test_a_process_reward_model_as_the_verifier(tmp_path, server):
    rows = [{"prompt": "copy", "completions": ["Step one.", "Step two."], "labels": [True, i % 2 == 0]}
            for i in range(8)]
    (tmp_path / "prm.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    trained = cli("train", "prm", "--model", "micro-llama", "--data", str(tmp_path / "prm.jsonl"),
                  "--out", str(tmp_path / "prm"), "--steps", "2", "--batch-size", "4", "--no-progress")
    assert trained.returncode == 0, trained.stderr
    tasks = [{"id": "p1", "prompt": "What is 2 + 5?"}]
    config = job(tmp_path, server.base_url, "direct", tasks, k=2)
    text = config.read_text().replace('verifier = "math"', 'verifier = "prm"')
    config.write_text(text.replace("[budget]", f'[prm]\npath = "{tmp_path / "prm"}"\n[budget]'))
    summary, _ = run(config, tmp_path / "o")
    assert summary["verified"] is not None and summary["verifier_errors"] == 0
    import sqlite3
    with sqlite3.connect(tmp_path / "o" / "run.db") as db:
        bodies = [json.loads(b) for (b,) in db.execute("SELECT body FROM verdicts WHERE verifier = 'prm'")]
    assert len(bodies) == 2 and all(b["step_scores"] and 0 <= b["score"] <= 1 for b in bodies)
