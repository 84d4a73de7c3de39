"""`selfplay prm-label` end to end on a tiny local policy: output format, budget stop, kill -9 + resume.

The policy is the random-weight `micro-llama` (its rollouts are noise, so most prefix labels are False and
the last step carries the candidate's own verdict); the candidates are hand-written worked solutions, one
right and one wrong per task, so every candidate has three steps at the ". " separator.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from selfplay.jobs.prm_label import dedup_candidates  # noqa: E402
from selfplay.jobs.prm_rollouts import prefixes  # noqa: E402
from selfplay.tasks.builtin import addition_task, worked_solution  # noqa: E402
from tests.tiny_model import save_tiny  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [(47, 38), (12, 29), (55, 61)]
CONFIG = """
[model]
name = "tiny-policy"
backend = "local"
path = "{model}"

[prm_label]
tasks = "tasks.jsonl"
candidates = "candidates.jsonl"
rollouts = 2
separator = ". "
max_tokens = 16
concurrency = 1
threads = 1
{extra}
[budget]
{budget}
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    return save_tiny(str(tmp_path_factory.mktemp("policy") / "m"))


def write_job(tmp: Path, model: str, *, budget: str = "", extra: str = "") -> Path:
    tasks = [addition_task(a, b) for a, b in PAIRS]
    (tmp / "tasks.jsonl").write_text("".join(t.model_dump_json() + "\n" for t in tasks))
    with (tmp / "candidates.jsonl").open("w") as handle:
        for task in tasks:
            a, b = task.metadata["a"], task.metadata["b"]
            for index, text in enumerate([worked_solution(a, b), worked_solution(a, b + 1)]):
                handle.write(json.dumps({"task_id": task.id, "workflow": "direct", "sample_index": index,
                                         "round": 0, "final_answer": text, "error": None}) + "\n")
    config = tmp / "prm.toml"
    config.write_text(CONFIG.format(model=model, budget=budget, extra=extra))
    return config


def cli(*args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SELFPLAY_CRASH_AT", None)
    if crash_at:
        env["SELFPLAY_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "selfplay", "prm-label", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "prm.jsonl").read_text().splitlines()]


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_prefixes_are_the_text_as_written_up_to_the_next_step():
    text = "7+8=15 c1. 4+3+1=8 c0. \\boxed{85}"
    assert prefixes(text, ["7+8=15 c1", "4+3+1=8 c0", "\\boxed{85}"]) == ["7+8=15 c1. ", "7+8=15 c1. 4+3+1=8 c0. "]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model_dir) -> tuple[Path, Path]:
    """One uninterrupted run: (its config, its run dir)."""
    tmp = tmp_path_factory.mktemp("reference")
    config = write_job(tmp, model_dir)
    result = cli("--config", str(config), "--out", str(tmp / "ref"))
    assert result.returncode == 0, result.stderr
    return config, tmp / "ref"


def test_labels_in_trl_prm_format_then_kill_9_and_resume_pays_nothing_twice(tmp_path, reference):
    config, ref = reference
    labelled = rows(ref)
    assert len(labelled) == 6 and (ref / "prm.parquet").exists()
    for row in labelled:
        assert row["prompt"].startswith("What is ") and len(row["completions"]) == 3
        assert all(isinstance(label, bool) for label in row["labels"]) and len(row["labels"]) == 3
    assert [row["labels"][-1] for row in labelled] == [True, False] * 3  # the last step: the candidate's verdict
    first = summary(ref)
    assert first["requests"] == 12 and first["rows"] == 6 and first["stopped_reason"] == "done"

    killed = cli("--config", str(config), "--out", str(tmp_path / "run"), crash_at="prm_label:candidate")
    assert killed.returncode == -9, killed.stderr
    with sqlite3.connect(tmp_path / "run" / "run.db") as db:
        stored = db.execute("SELECT COUNT(*) FROM candidates WHERE workflow LIKE 'prm:%'").fetchone()[0]
    assert stored == 4 and not (tmp_path / "run" / "prm.jsonl").exists()  # one candidate: 2 prefixes x 2
    resumed = cli("--config", str(config), "--out", str(tmp_path / "run"))
    assert resumed.returncode == 0, resumed.stderr
    assert rows(tmp_path / "run") == labelled
    again = summary(tmp_path / "run")
    assert again["requests"] == first["requests"] and again["cost_usd"] == pytest.approx(first["cost_usd"])


def test_budget_cap_stops_with_exit_3_and_a_higher_cap_finishes(tmp_path, model_dir):
    config = write_job(tmp_path, model_dir, budget="tokens = 300")
    stopped = cli("--config", str(config), "--out", str(tmp_path / "o"))
    assert stopped.returncode == 3, stopped.stderr
    assert "budget" in stopped.stderr
    partial = summary(tmp_path / "o")
    assert partial["stopped_reason"] == "budget" and partial["budget_cap"] == "tokens"
    assert partial["prompt_tokens"] + partial["completion_tokens"] <= 300
    assert partial["rows"] < 6
    done = cli("--config", str(config), "--out", str(tmp_path / "o"), "--set", "budget.tokens=100000")
    assert done.returncode == 0, done.stderr
    assert summary(tmp_path / "o")["rows"] == 6


def test_sampling_candidates_first_and_soft_labels(tmp_path, model_dir):
    config = write_job(tmp_path, model_dir, extra="k = 2\nsoft = true\n")
    config.write_text(config.read_text().replace('candidates = "candidates.jsonl"\n', ""))
    result = cli("--config", str(config), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    out = summary(tmp_path / "o")
    assert out["candidates"] + out["duplicates"] == 6 and out["rows"] == len(rows(tmp_path / "o"))
    for row in rows(tmp_path / "o"):
        assert all(isinstance(label, float) and 0.0 <= label <= 1.0 for label in row["labels"])


def test_a_repeated_candidate_is_labelled_once_unless_dedup_is_off():
    from selfplay.core.candidate import Candidate

    first = {"task_id": "t1", "workflow": "direct", "sample_index": 0, "final_answer": "1+1=2 c0. \\boxed{2}"}
    candidates = [Candidate(**c) for c in (first, {**first, "sample_index": 1}, {**first, "task_id": "t2"},
                                           {**first, "final_answer": "x"})]
    kept, duplicates = dedup_candidates(candidates, True)
    assert kept == [candidates[0], candidates[2], candidates[3]] and duplicates == 1
    assert dedup_candidates(candidates, False) == (candidates, 0)


def test_resume_with_changed_rollouts_is_refused(reference):
    config, ref = reference
    again = cli("--config", str(config), "--out", str(ref), "--set", "prm_label.rollouts=3")
    assert again.returncode == 1 and "prm_label.rollouts" in again.stderr
