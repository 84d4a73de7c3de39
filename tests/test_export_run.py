"""`selfplay run` leaves its data on disk: each round's training rows with the candidates they came from, every
candidate's verdict, and a directory `selfplay export` turns into TRL files (held-out samples never exported)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli_run import selfplay

CONFIG = """
[model]
name = "micro-llama"
backend = "local"

[local]
hourly_usd = 3.6
max_batch_rows = 64

[tasks]
builtin = "addition"
n_seed = 16
n_train = 8
n_eval = 4

[generate]
k = 4
max_tokens = 12
seed = 5

[train]
cold_start_epochs = 1
settings = { lr = 3e-3, batch_size = 8, epochs = 1 }

[eval]
k = 2

[loop]
rounds = 1
require_improvement = false

[tracking]
report_to = "tensorboard"
"""


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_writes_train_rows_and_verdicts_and_exports(tmp_path):
    (tmp_path / "run.toml").write_text(CONFIG)
    out = tmp_path / "out"
    result = selfplay("run", str(tmp_path / "run.toml"), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    candidates = {c["id"]: c for c in _lines(out / "candidates.jsonl")}
    train_ids = [i for i, c in candidates.items() if c["workflow"] == "direct"]
    assert len(train_ids) == 8 * 4 and all(candidates[i]["verdict"] is not None for i in candidates)
    rows = _lines(out / "rounds" / "1" / "train.jsonl")
    record = json.loads((out / "rounds.json").read_text())["rounds"][1]
    from_candidates = [r for r in rows if r["candidate_ids"]]
    assert len(from_candidates) == record["selection"]["rows"]
    assert len(rows) - len(from_candidates) == 16  # the replayed seed rows, which came from no candidate
    for row in from_candidates:  # every row names the passing candidate whose messages it is
        (cid,) = row["candidate_ids"]
        assert cid.startswith("r1/direct/") and candidates[cid]["verdict"]["passed"]
        assert row["messages"] == candidates[cid]["messages"]
    from tests.test_tracking import read_scalars
    scalars = read_scalars(out / "tracking")  # [tracking]: both rounds, and the trainer's steps
    assert [step for step, _ in scalars["round/eval_pass_1"]] == [0, 1] and scalars["train/loss"]
    export = selfplay("export", str(out), "--format", "grpo", "--out", str(tmp_path / "grpo.jsonl"))
    assert export.returncode == 0, export.stderr
    exported = _lines(tmp_path / "grpo.jsonl")
    groups = {}
    for i in train_ids:
        groups.setdefault(candidates[i]["task_id"], []).append(candidates[i]["verdict"]["score"])
    assert len(exported) == sum(1 for scores in groups.values() if len(set(scores)) > 1)  # eval never exported


def test_round_rows_name_the_candidates_they_came_from():
    """Each algorithm's rows carry the ids of the candidates they were built from (a model-free check)."""
    from types import SimpleNamespace

    from selfplay.jobs.algorithms import get
    from selfplay.pipeline.metrics import by_task
    from tests.candidates import verified

    def item(task, index, text, passed):
        return verified(task, index, text, passed, prompt=[{"role": "user", "content": f"task {task}"}], round_=3)

    def training_rows(items, select, name, _eval):
        return get(name).rows(by_task(items), select), None

    def round_candidate_ids(rows, *_):
        return [row.get("candidate_ids", []) for row in rows]

    items = [item("a", 0, "right", True), item("a", 1, "wrong", False), item("a", 2, "also wrong", False),
             item("b", 0, "b right", True), item("b", 1, "b right 2", True)]
    select = SimpleNamespace(decontaminate_n=None, rule="rejection", cap_per_task=None, max_pairs=4)
    sft, _ = training_rows(items, select, "sft", [])
    assert round_candidate_ids(sft, items, 3, "direct") == [["r3/direct/a/0"], ["r3/direct/b/0"], ["r3/direct/b/1"]]
    dpo, _ = training_rows(items, select, "dpo", [])
    assert round_candidate_ids(dpo, items, 3, "direct") == [["r3/direct/a/0", "r3/direct/a/1"],
                                                          ["r3/direct/a/0", "r3/direct/a/2"]]
    grpo, _ = training_rows(items, select, "grpo", [])
    assert round_candidate_ids(grpo, items, 3, "direct") == [["r3/direct/a/0", "r3/direct/a/1", "r3/direct/a/2"]]
    seed = [{"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}]
    assert round_candidate_ids(seed, items, 3, "direct") == [[]]


MIXED = """
[model]
name = "micro-llama"
backend = "local"

[tasks]
train = "train.jsonl"
eval = "eval.jsonl"

[generate]
k = 2
max_tokens = 8
seed = 3
verifier = "auto"

[train]
settings = { lr = 1e-3, batch_size = 4, epochs = 1 }

[eval]
k = 1

[loop]
rounds = 1
require_improvement = false
"""


def test_a_mixed_math_and_code_run_verifies_each_task_by_kind_and_exports(tmp_path):
    def tasks(prefix: str, start: int) -> str:
        rows = [{"id": f"{prefix}m{i}", "prompt": f"What is {i} + 1?", "answer": str(i + 1)}
                for i in range(start, start + 2)]
        rows += [{"id": f"{prefix}c{i}", "prompt": f"Write inc{i}(x).", "tests": [f"assert inc{i}(1) == 2"]}
                 for i in range(start, start + 2)]
        return "".join(json.dumps(r) + "\n" for r in rows)

    (tmp_path / "train.jsonl").write_text(tasks("t", 0))
    (tmp_path / "eval.jsonl").write_text(tasks("e", 10))
    (tmp_path / "run.toml").write_text(MIXED)
    out = tmp_path / "out"
    result = selfplay("run", str(tmp_path / "run.toml"), "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    rows = _lines(out / "candidates.jsonl")
    assert {r["task_kind"] for r in rows} == {"math", "code"} and all(r["verdict"] is not None for r in rows)
    for r in rows:  # the code sandbox judged code tasks, the math verifier math tasks (the micro model fails both)
        reason = r["verdict"]["reason"] or ""
        assert ("tests failed" in reason) == (r["task_kind"] == "code"), r
    export = selfplay("export", str(out), "--format", "sft", "--out", str(tmp_path / "sft.parquet"))
    assert export.returncode == 1 and "no sft rows" in export.stderr  # nothing passed: refused, not an empty file
