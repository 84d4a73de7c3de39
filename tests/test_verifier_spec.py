"""The config tier's pieces that used to live above it: the verifier spec grammar (one parser for the configs and
the verification stage), the PRM directory check, and the one rule for torch CPU threads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfplay.config.common import prm_dir_problem
from selfplay.config.verifier_spec import CHECK_NAMES, VerifierSpec, parse_verifier_spec
from selfplay.core.errors import UserError
from selfplay.pipeline import llm
from selfplay.pipeline.verify import CHECKS, parse_verifier

ROOT = Path(__file__).resolve().parents[1]
BAD = ("nope", "", "all_of", "all_of:", "all_of:math,judge", "weighted:math=x", "all_of:math@x", "weighted:math=0",
       "weighted:math=1,math=-1", "threshold:math", "threshold:math,code@1", "threshold:nope@1")


def test_the_grammar_parses_every_form():
    assert parse_verifier_spec("auto") == VerifierSpec("check", ("auto",))
    assert parse_verifier_spec("prm") == VerifierSpec("model", ("prm",))
    assert parse_verifier_spec("any_of: math , code ,") == VerifierSpec("any_of", ("math", "code"), (1.0, 1.0))
    weighted = parse_verifier_spec("weighted:math=0.7,code=0.3@0.5")
    assert weighted == VerifierSpec("weighted", ("math", "code"), (0.7, 0.3), 0.5) and weighted.composite
    assert parse_verifier_spec("threshold:math@0.8") == VerifierSpec("threshold", ("math",), (1.0,), 0.8)
    # a repeated name keeps its last weight, as the composite does: -1 then 1 is a valid sum
    assert parse_verifier_spec("weighted:math=-1,math=1").weights == (-1.0, 1.0)


def test_the_grammar_names_the_same_checks_as_the_stage():
    assert tuple(CHECKS) == CHECK_NAMES


@pytest.mark.parametrize("spec", BAD)
def test_config_and_stage_reject_a_bad_spec_with_the_same_words(spec):
    with pytest.raises(ValueError) as by_config:
        parse_verifier_spec(spec)
    with pytest.raises(ValueError) as by_stage:
        parse_verifier(spec)
    assert str(by_config.value) == str(by_stage.value)


def test_weights_are_checked_by_compose_s_own_rule_at_config_time():
    from verifiers.compose import Weighted

    with pytest.raises(ValueError) as by_compose:
        Weighted({"math": (lambda r: None, 0.0)})
    with pytest.raises(ValueError) as by_config:
        parse_verifier_spec("weighted:math=0,code=0@0.1")
    assert str(by_config.value) == str(by_compose.value)


def test_config_validates_verifiers_without_importing_a_stage():
    probe = ("import sys\n"
             "from selfplay.config.run import LoopGenerate\n"
             "from selfplay.config.generate import GenerateConfig, check_generate\n"
             "LoopGenerate(verifier='weighted:math=3,code=1@0.7')\n"
             "gen = {'tasks': 't', 'verifier': 'all_of:math,code'}\n"
             "check_generate(GenerateConfig(model={'name': 'm'}, generate=gen))\n"
             "upper = {'pipeline', 'policy', 'jobs', 'servers', 'cli'}\n"
             "above = sorted(m for m in sys.modules if m.startswith('selfplay.') and m.split('.')[1] in upper)\n"
             "print(above)\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_prm_dir_problem_names_what_is_wrong(tmp_path):
    from verifiers.prm.model import CONFIG_FILE, PRM_FORMAT

    assert "is not a directory" in prm_dir_problem(str(tmp_path / "none"))
    assert f"has no {CONFIG_FILE}" in prm_dir_problem(str(tmp_path))
    (tmp_path / CONFIG_FILE).write_text("{not json")
    assert "is unreadable" in prm_dir_problem(str(tmp_path))
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"format": "old"}))
    assert "format 'old'" in prm_dir_problem(str(tmp_path))
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"format": PRM_FORMAT}))
    assert prm_dir_problem(str(tmp_path)) is None


def test_torch_threads_configured_then_environment_then_the_machine(monkeypatch):
    monkeypatch.delenv(llm.THREADS_ENV, raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(2)), raising=False)
    assert llm.torch_threads(None) == 1            # <= 2 CPUs: one thread (issue 26)
    assert llm.torch_threads(3) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert llm.torch_threads(None) is None         # torch's own default
    monkeypatch.setenv(llm.THREADS_ENV, "4")
    assert llm.torch_threads(None) == 4 and llm.torch_threads(2) == 2
    monkeypatch.setenv(llm.THREADS_ENV, "two")
    with pytest.raises(UserError, match="SELFPLAY_TORCH_THREADS"):
        llm.torch_threads(None)


def test_set_torch_threads_sets_torch(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv(llm.THREADS_ENV, raising=False)
    try:
        assert llm.set_torch_threads(1) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
