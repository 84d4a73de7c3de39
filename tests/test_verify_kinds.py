"""Verification per task: `auto` lets `Task.kind` pick math or code (one run mixes both), compositions of
verifiers from a config string (all_of / any_of / weighted / threshold), and a bad spec is one clear error."""

from __future__ import annotations

import json

import pytest

from selfplay.tasks.task import Task
from selfplay.servers.testing import MockServer
from selfplay.core.candidate import Candidate
from selfplay.pipeline.verify import check_by_kind, parse_verifier


def C(text: str) -> Candidate:  # noqa: N802 - a candidate that is only its answer
    return Candidate(task_id="t", workflow="direct", sample_index=0, final_answer=text)
from tests.gen_helpers import cli, write_job

MATH = Task(id="m", prompt="What is 2 + 3?", answer="5")
CODE = Task(id="c", prompt="Write add(a, b).", tests=["assert add(1, 2) == 3", "assert add(2, 2) == 4"])
BOTH = Task(id="b", prompt="add and say 3", kind="code", answer="3", tests=["assert add(1, 2) == 3"])
PROGRAM = "```python\ndef add(a, b):\n    return a + b\n```"


def test_auto_picks_the_check_by_kind():
    assert MATH.kind == "math" and CODE.kind == "code"
    assert check_by_kind(C("\\boxed{5}"), MATH).passed
    assert not check_by_kind(C("\\boxed{6}"), MATH).passed
    assert check_by_kind(C(PROGRAM), CODE).passed
    assert not check_by_kind(C(PROGRAM.replace("+", "-")), CODE).passed
    open_task = Task(id="o", prompt="Write a poem.")
    assert check_by_kind(C("roses"), open_task).error == "no_verifier"


def test_compositions_follow_verifiers_compose():
    answer_only, program_only = "\\boxed{3}", PROGRAM  # the program's text has no boxed 3, the answer no program
    both = PROGRAM + "\nSo add(1, 2) is \\boxed{3}."
    all_of, any_of = parse_verifier("all_of:math,code"), parse_verifier("any_of:math,code")
    assert all_of(C(both), BOTH).passed and not all_of(C(answer_only), BOTH).passed
    assert any_of(C(answer_only), BOTH).passed and any_of(C(program_only), BOTH).passed
    weighted = parse_verifier("weighted:math=3,code=1@0.7")
    verdict = weighted(C(answer_only), BOTH)
    assert verdict.score == pytest.approx(0.75) and verdict.passed
    assert not weighted(C(program_only), BOTH).passed  # 0.25 < 0.7
    assert parse_verifier("threshold:code@0.5")(C(both), BOTH).passed
    for bad in ("nope", "all_of:math,judge", "weighted:math=x", "threshold:math", "threshold:math,code@1"):
        with pytest.raises(ValueError):
            parse_verifier(bad)


SCRIPT = """
[[rules]]
match = 'What is (\\d+) \\+ (\\d+)\\?'
reply = 'It is \\boxed{{add:1,2}}'

[[rules]]
match = 'Write add'
reply = '''```python
def add(a, b):
    return a + b
```'''
"""


def test_one_generate_run_verifies_math_and_code_tasks_and_exports_both(tmp_path):
    (tmp_path / "script.toml").write_text(SCRIPT)
    with MockServer(script=str(tmp_path / "script.toml"), seed=1) as server:
        config = write_job(tmp_path, server.base_url, tasks=3, k=2)
        with (tmp_path / "tasks.jsonl").open("a") as handle:
            for i in range(2):
                handle.write(json.dumps({"id": f"code{i}", "prompt": f"Write add (variant {i}).",
                                         "tests": ["assert add(1, 2) == 3", f"assert add({i}, 1) == {i + 1}"]}) + "\n")
        config.write_text(config.read_text().replace("seed = 11", 'seed = 11\nverifier = "auto"'))
        result = cli("generate", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in (tmp_path / "out" / "candidates.jsonl").read_text().splitlines()]
    kinds = {r["task_kind"] for r in rows}
    assert kinds == {"math", "code"} and len(rows) == 10 and all(r["verdict"]["passed"] for r in rows)
    code = [r for r in rows if r["task_kind"] == "code"]
    assert len(code) == 4 and all(r["verdict"]["reason"] == "all tests passed" for r in code)  # the sandbox ran
    assert not any(r["verdict"]["reason"] == "all tests passed" for r in rows if r["task_kind"] == "math")
    out = tmp_path / "sft.jsonl"
    export = cli("export", str(tmp_path / "out"), "--format", "sft", "--out", str(out), "--no-dedup")
    assert export.returncode == 0 and export.stdout.startswith("10 sft rows"), export.stderr
    export = cli("export", str(tmp_path / "out"), "--format", "sft", "--out", str(out))  # default: distinct answers
    assert export.returncode == 0 and export.stdout.startswith("5 sft rows"), export.stderr


def test_a_bad_verifier_spec_is_one_message(tmp_path):
    config = write_job(tmp_path, "http://127.0.0.1:9", tasks=1, k=1)
    config.write_text(config.read_text().replace("seed = 11", 'seed = 11\nverifier = "all_of:math,maths"'))
    result = cli("generate", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 1 and "maths" in result.stderr and "Traceback" not in result.stderr, result.stderr
