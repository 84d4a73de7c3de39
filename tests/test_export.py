"""The data on disk: `candidates.jsonl` with verdicts, `rounds/R/train.jsonl` with candidate ids, and
`selfplay export` (sft / dpo / grpo / prm, JSONL and Parquet) loading with HF `datasets`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfplay.servers.testing import MockServer
from tests.gen_helpers import cli, write_job


SCRIPT = """
[[rules]]
match = 'What is (\\d+) \\+ (\\d+)\\?'
pick = "cycle"
replies = ['{1} + {2} = {add:1,2}. \\boxed{{add:1,2}}', 'Off by one: \\boxed{{add:1,=1}}',
           'Adding: \\boxed{{add:1,2}}', 'Hmm: \\boxed{{sum:1,2,=100}}']
"""


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    (tmp / "script.toml").write_text(SCRIPT)
    with MockServer(script=str(tmp / "script.toml"), seed=3) as server:
        config = write_job(tmp, server.base_url, tasks=12, k=4)
        config.write_text(config.read_text().replace("seed = 11", 'seed = 11\nverifier = "math"'))
        result = cli("generate", "--config", str(config), "--out", str(tmp / "out"), "--no-progress")
    assert result.returncode == 0, result.stderr
    return tmp / "out"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_candidates_jsonl_carries_each_verdict(generated):
    rows = _lines(generated / "candidates.jsonl")
    assert len(rows) == 48
    assert len({r["id"] for r in rows}) == 48 and rows[0]["id"] == "r0/direct/t0/0"
    for r in rows:
        assert set(r["verdicts"]) == {"math"}
        assert r["verdict"]["passed"] == bool(r["verdicts"]["math"]["passed"])
    passed = sum(r["verdict"]["passed"] for r in rows)
    assert passed == 24  # the script answers two of each task's four right
    summary = json.loads((generated / "summary.json").read_text())
    assert passed == summary["verified"]


@pytest.mark.parametrize("fmt,columns", [("sft", {"messages"}), ("dpo", {"prompt", "chosen", "rejected"}),
                                         ("grpo", {"prompt", "completions", "rewards"})])
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_export_loads_with_datasets(generated, tmp_path, fmt, columns, suffix):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / f"{fmt}{suffix}"
    result = cli("export", str(generated), "--format", fmt, "--out", str(out))
    assert result.returncode == 0, result.stderr
    n = int(result.stdout.split()[0])
    assert n > 0
    ds = datasets.load_dataset("json" if suffix == ".jsonl" else "parquet", data_files=str(out), split="train")
    assert len(ds) == n and columns <= set(ds.column_names) and "candidate_ids" in ds.column_names
    candidates = {r["id"]: r for r in _lines(generated / "candidates.jsonl")}
    row = ds[0]
    if fmt == "sft":
        assert n == sum(c["verdict"]["passed"] for c in candidates.values())
        assert candidates[row["candidate_ids"][0]]["verdict"]["passed"]
        assert row["messages"][-1]["role"] == "assistant"
    elif fmt == "dpo":
        good, bad = (candidates[i] for i in row["candidate_ids"])
        assert good["verdict"]["passed"] and not bad["verdict"]["passed"] and good["task_id"] == bad["task_id"]
        assert row["chosen"][-1]["content"] == good["messages"][-1]["content"]
    else:
        assert len(set(row["rewards"])) > 1 and len(row["completions"]) == len(row["rewards"]) == 4


def test_min_score_above_every_score_exports_nothing(generated, tmp_path):
    out = tmp_path / "sft.jsonl"
    result = cli("export", str(generated), "--format", "sft", "--min-score", "1.5", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("0 sft rows") and out.read_text() == ""


def test_bad_inputs_are_one_message_and_exit_1(generated, tmp_path):
    cases = [(["export", str(tmp_path), "--format", "sft", "--out", str(tmp_path / "x.jsonl")], "no run store"),
             (["export", str(generated), "--format", "sft", "--out", str(tmp_path / "x.csv")], ".jsonl or .parquet"),
             (["export", str(generated), "--format", "prm", "--out", str(tmp_path / "x.jsonl")], "prm-label")]
    for args, message in cases:
        result = cli(*args)
        assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
