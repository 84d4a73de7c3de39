"""One config module per job, one resume check, one `open_run`: every problem of a config in one message at
file:line; adaptive-K keys declared once (k_max >= k refused at load by both jobs, 0.5 the effective low-pass
rate of both); every changed pinned key named at once; `open_run` writes nothing when it refuses and never
overwrites the config.json of a directory another process holds."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from selfplay.config.common import AdaptiveSamplingSection
from selfplay.config.generate import PINNED as GENERATE_PINNED
from selfplay.config.generate import GenerateConfig, GenerateSection, load_generate_config
from selfplay.config.prm_label import load_prm_label_config
from selfplay.config.resume import check_resume
from selfplay.config.run import LoopGenerate, load_run_config
from selfplay.core.errors import UserError
from selfplay.core.store import RunStore
from selfplay.jobs.setup import open_run
from selfplay.pipeline.sample import adaptive_settings
from selfplay.tasks.task import Task

ROOT = Path(__file__).resolve().parents[1]

GENERATE = """[model]
name = "m"
base_url = "http://127.0.0.1:9/v1"

[generate]
tasks = "tasks.jsonl"
k = 4
"""

RUN = """[model]
name = "micro-llama"
backend = "local"

[tasks]
builtin = "addition"

[loop]
rounds = 1
"""


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_generate_reports_every_cross_field_problem_in_one_message_at_its_line(tmp_path):
    path = write(tmp_path, "gen.toml", GENERATE + 'workflow = "feedback"\nk_max = 8\n'
                 '[model.extra_body]\n[executor]\nkind = "ray"\n')
    path.write_text(path.read_text().replace('base_url = "http://127.0.0.1:9/v1"',
                                             'base_url = "http://127.0.0.1:9/v1"\nbatch = true'))
    with pytest.raises(UserError) as info:
        load_generate_config(path)
    message = str(info.value)
    assert message.startswith("invalid config:")
    assert f"gen.toml:{line_of(path, 'workflow =')}: [generate] workflow: \"feedback\" needs a verifier" in message
    assert f"gen.toml:{line_of(path, 'k_max =')}: [generate] k_max: adaptive K" in message
    assert f"gen.toml:{line_of(path, 'batch = true')}: [model] batch: batch = true needs" in message


def test_the_loop_reports_every_problem_in_one_message(tmp_path, capsys):
    path = write(tmp_path, "run.toml", RUN.replace("rounds = 1", "rounds = 1\ncontrol_steps = [3]")
                 + "[select]\nmax_pairs = 2\n")
    with pytest.raises(UserError) as info:
        load_run_config(path)
    message = str(info.value)
    assert f"run.toml:{line_of(path, 'control_steps')}: [loop] control_steps: only the control arm" in message
    assert f"run.toml:{line_of(path, 'max_pairs')}: [select] max_pairs: only DPO reads it" in message


def test_adaptive_k_is_declared_once_with_one_set_of_defaults():
    for section in (GenerateSection, LoopGenerate):
        assert issubclass(section, AdaptiveSamplingSection)
        for key in ("k_max", "stop_after_verified", "batch", "low_pass_rate"):
            assert key not in section.__dict__.get("__annotations__", {}), f"{section.__name__} redeclares {key}"
            assert section.model_fields[key].default == AdaptiveSamplingSection.model_fields[key].default
    generate, loop = GenerateSection(tasks="t.jsonl"), LoopGenerate()
    assert adaptive_settings(generate).low_pass_rate == adaptive_settings(loop).low_pass_rate == 0.5


@pytest.mark.parametrize("job", ["generate", "run"])
def test_k_max_below_k_is_refused_at_load_by_both_jobs(tmp_path, job):
    if job == "generate":
        path = write(tmp_path, "gen.toml", GENERATE + 'verifier = "math"\nk_max = 2\n')
        load = load_generate_config
    else:
        path = write(tmp_path, "run.toml", RUN + "[generate]\nk = 4\nk_max = 2\n")
        load = load_run_config
    with pytest.raises(UserError, match=r"k_max \(2\) must be at least k \(4\)"):
        load(path)


def test_a_resumed_run_names_every_changed_pinned_key_in_one_message(tmp_path):
    config = GenerateConfig.model_validate({"model": {"name": "m"}, "generate": {"tasks": "t.jsonl", "k": 4}})
    out = tmp_path / "out"
    with open_run(config, out, GENERATE_PINNED, [Task(id="t0", prompt="1+1?", answer="2")]) as run:
        run.store.put_round(0, "done", {})  # the directory now holds a result
    changed = config.model_copy(deep=True)
    changed.generate.k, changed.generate.temperature, changed.model.name = 8, 0.5, "other"
    with pytest.raises(UserError) as info:
        check_resume(changed, out, GENERATE_PINNED)
    message = str(info.value)
    assert "model.name = 'm', but this config says 'other'" in message
    assert "generate.k = 4, but this config says 8" in message
    assert "generate.temperature" in message and "another --out" in message
    budget_only = config.model_copy(deep=True)
    budget_only.budget.usd, budget_only.generate.concurrency = 3.0, 2  # not pinned: may change between sessions
    check_resume(budget_only, out, GENERATE_PINNED)


def test_open_run_writes_nothing_when_it_refuses_and_never_overwrites_a_held_directory(tmp_path):
    config = GenerateConfig.model_validate({"model": {"name": "m"}, "generate": {"tasks": "t.jsonl"}})
    tasks = [Task(id="t0", prompt="1+1?", answer="2")]
    out = tmp_path / "out"
    with open_run(config, out, GENERATE_PINNED, tasks) as run:
        assert json.loads((out / "config.json").read_text()) == config.model_dump(mode="json")
        assert run.ledger.totals.spent_usd == 0
        other = config.model_copy(deep=True)
        other.generate.k = 2
        with pytest.raises(UserError, match="in use by another selfplay process"):  # held: refused before writing
            with open_run(other, out, GENERATE_PINNED, tasks):
                pass
        assert json.loads((out / "config.json").read_text())["generate"]["k"] == config.generate.k
        run.store.put_round(0, "done", {})
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix in (".json", ".db")}
    changed = config.model_copy(deep=True)
    changed.generate.seed = 1
    with pytest.raises(UserError, match="generate.seed"):
        with open_run(changed, out, GENERATE_PINNED, tasks):
            pass
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in before} == before
    with RunStore(out) as store:  # tasks went into the store
        assert store.get_rounds()[0]["round"] == 0


def test_prm_label_finds_its_files_beside_the_config_and_keeps_hf_names(tmp_path):
    path = write(tmp_path, "prm.toml", '[model]\nname = "m"\nbackend = "local"\npath = "model"\n'
                 '[prm_label]\ntasks = "hf:openai/gsm8k:main:test"\ncandidates = "c.jsonl"\n')
    config = load_prm_label_config(path)
    assert config.prm_label.tasks == "hf:openai/gsm8k:main:test"
    assert config.prm_label.candidates == str(tmp_path / "c.jsonl")
    assert config.model.path == str(tmp_path / "model")


def test_one_pinned_table_per_job_config_module_and_one_resume_checker():
    pinned, checkers = [], []
    for path in sorted((ROOT / "selfplay").rglob("*.py")):
        tree = ast.parse(path.read_text())
        rel = str(path.relative_to(ROOT))
        pinned += [rel for node in tree.body if isinstance(node, ast.Assign)
                   for target in node.targets if getattr(target, "id", None) == "PINNED"]
        checkers += [f"{rel}:{node.name}" for node in ast.walk(tree)
                     if isinstance(node, ast.FunctionDef) and "resume" in node.name and "check" in node.name]
    assert pinned == ["selfplay/config/generate.py", "selfplay/config/prm_label.py", "selfplay/config/run.py"]
    assert checkers == ["selfplay/config/resume.py:check_resume"]
