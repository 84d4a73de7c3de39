"""Task sources through HF `datasets`: GSM8K / MATH / HumanEval / MBPP shapes from local parquet, json and csv
files (offline), the field mapping, ids made when absent, and one clear message per bad source."""

from __future__ import annotations

import json

import pytest

from selfplay.core.errors import UserError
from selfplay.tasks.sources import boxed_answer, gsm8k_answer
from selfplay.tasks.load import load_tasks

pytest.importorskip("datasets")

GSM8K = [{"question": "Tom has 3 apples and buys 1,200 more. How many?", "answer": "3 + 1200 = 1203\n#### 1,203"},
         {"question": "What is 2 + 2?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"}]
MATH = [{"problem": "Simplify $\\frac{2}{4}$.", "solution": "We get $\\boxed{\\frac{1}{2}}$.", "level": "Level 1",
         "type": "Algebra", "unique_id": "test/algebra/1.json"}]
HUMANEVAL = [{"task_id": "HumanEval/0", "prompt": "def add(a, b):\n", "entry_point": "add",
              "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n", "canonical_solution": "    return a+b"}]
MBPP = [{"task_id": 2, "text": "Write a function to add two numbers.", "test_list": ["assert add(1, 2) == 3"],
         "test_setup_code": "", "code": "def add(a, b): return a + b"}]


def _parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def test_gsm8k_parquet_extracts_the_hash_answer_and_makes_ids(tmp_path):
    tasks = load_tasks(_parquet(tmp_path / "gsm8k.parquet", GSM8K))
    assert [t.id for t in tasks] == ["gsm8k-0", "gsm8k-1"]
    assert [t.answer for t in tasks] == ["1203", "4"] and tasks[0].kind == "math"
    assert tasks[0].prompt.startswith("Tom has 3 apples")


def test_math_json_takes_the_last_boxed_answer_and_its_id(tmp_path):
    path = tmp_path / "math.json"
    path.write_text("\n".join(json.dumps(r) for r in MATH))
    (task,) = load_tasks(str(path))
    assert task.id == "test/algebra/1.json" and task.answer == "\\frac{1}{2}"
    assert task.metadata == {"level": "Level 1", "type": "Algebra"}


def test_humaneval_and_mbpp_become_code_tasks_whose_tests_run(tmp_path):
    from verifiers.code import verify

    (he,) = load_tasks(_parquet(tmp_path / "he.parquet", HUMANEVAL))
    (mb,) = load_tasks(_parquet(tmp_path / "mbpp.parquet", MBPP))
    assert he.id == "HumanEval/0" and mb.id == "2" and he.kind == mb.kind == "code"
    assert "assert add(1, 2) == 3" in mb.prompt
    good, bad = "def add(a, b):\n    return a + b\n", "def add(a, b):\n    return a - b\n"
    for task in (he, mb):
        assert verify(good, task.tests).passed and not verify(bad, task.tests).passed


def test_csv_with_a_field_mapping(tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("q,a,key\nWhat is 1+1?,2,first\nWhat is 2+3?,5,second\n")
    tasks = load_tasks(f"hf:{path}?format=plain&prompt=q&answer=a&id=key&kind=math&limit=1")
    assert [(t.id, t.prompt, t.answer, t.kind) for t in tasks] == [("first", "What is 1+1?", "2", "math")]


def test_bad_sources_name_the_problem(tmp_path):
    parquet = _parquet(tmp_path / "g.parquet", GSM8K)
    cases = [(f"hf:{parquet}?colour=red", "unknown option(s) colour"),
             (f"hf:{parquet}?format=plain&prompt=nope", "no column 'nope'"),
             (f"hf:{tmp_path / 'missing.parquet'}", "does not exist"),
             (_parquet(tmp_path / "m.parquet", [{"problem": "x", "solution": "no box"}]), "no \\boxed")]
    for spec, message in cases:
        with pytest.raises(UserError, match=None) as info:
            load_tasks(spec)
        assert message in str(info.value)


def test_answer_extraction_helpers():
    assert gsm8k_answer("a\n#### -1,000") == "-1000"
    assert boxed_answer("\\boxed{1} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert boxed_answer("none") is None and boxed_answer("\\boxed{unclosed") is None


def test_generate_reads_a_gsm8k_parquet_next_to_its_config(tmp_path):
    from selfplay.servers.testing import MockServer
    from tests.gen_helpers import cli, read_summary, write_job

    rows = [{"question": f"What is {i} + {i + 1}?", "answer": f"{i} + {i + 1}\n#### {2 * i + 1}"} for i in range(5)]
    _parquet(tmp_path / "gsm8k.parquet", rows)
    with MockServer(seed=1) as server:
        config = write_job(tmp_path, server.base_url, tasks=1, k=2)
        config.write_text(config.read_text().replace('tasks = "tasks.jsonl"', 'tasks = "gsm8k.parquet"')
                          .replace("seed = 11", 'seed = 11\nverifier = "math"'))
        result = cli("generate", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 0, result.stderr
    summary = read_summary(tmp_path / "out")
    assert summary["candidates"] == 10 and summary["verified"] == 10  # the mock adds right; the #### refs match
