"""Issue 26: every command's Ctrl-C and bad-input paths end in ONE line and an exit code, never a traceback.

Ctrl-C: each command's work is replaced by a KeyboardInterrupt (or the CancelledError asyncio.run turns it into), then
`selfplay run` is interrupted for real by SIGINT mid-round (it printed a KeyboardInterrupt/CancelledError traceback
before) and resumed by the same command. Bad input: one malformed argument per command, in process (an uncaught
exception would fail the test with its traceback).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfplay import cli
from tests.gen_helpers import ROOT

ARGV = {  # a parseable command line per command: the work itself is replaced
    "generate": ["generate", "--config", "x.toml", "--out", "o"],
    "run": ["run", "x.toml", "--out", "o"],
    "demo": ["demo", "--quick"],
    "report": ["report", "o"],
    "export": ["export", "o", "--format", "sft", "--out", "x.jsonl"],
    "train": ["train", "sft", "--model", "micro-llama", "--data", "x.jsonl", "--out", "o"],
    "serve": ["serve", "--model", "micro-llama"],
    "mock_server": ["mock-server"],
    "prm_label": ["prm-label", "--config", "x.toml", "--out", "o"],
}


def test_every_command_has_a_ctrl_c_case():
    assert set(ARGV) == set(cli.COMMANDS)


BUILD_PARSER = cli.build_parser


def _interrupting_parser(error: type[BaseException]):
    parser = BUILD_PARSER()

    def interrupted(_args):
        raise error()

    for action in parser._subparsers._group_actions:  # every subcommand's work -> Ctrl-C
        for sub in action.choices.values():
            sub.set_defaults(func=interrupted)
    return parser


@pytest.mark.parametrize("error", [KeyboardInterrupt, asyncio.CancelledError])
@pytest.mark.parametrize("command", sorted(ARGV))
def test_ctrl_c_in_every_command_exits_130_with_one_line(command, error, monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser", lambda: _interrupting_parser(error))
    assert cli.main(ARGV[command]) == 130
    err = capsys.readouterr().err
    assert "run the same command to resume" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1


def _bad_inputs(tmp: Path) -> dict[str, list[str]]:
    (tmp / "bad.jsonl").write_text("{not json\n")
    (tmp / "digits.toml").write_text('[model]\nname = "micro-llama"\nbackend = "local"\n'
                                     '[tasks]\nbuiltin = "addition"\ndigits = 1\n')
    return {
        "generate": ["generate", "--config", str(tmp / "none.toml"), "--out", str(tmp / "g")],
        "run": ["run", str(tmp / "digits.toml"), "--out", str(tmp / "r")],
        "demo": ["demo", "--arms", "sft,nonsense", "--out", str(tmp / "d")],
        "report": ["report", str(tmp / "no-run")],
        "export": ["export", str(tmp / "no-run"), "--format", "sft", "--out", str(tmp / "x.jsonl")],
        "train": ["train", "sft", "--model", "micro-llama", "--data", str(tmp / "bad.jsonl"), "--out", str(tmp / "t")],
        "serve": ["serve", "--model", str(tmp / "no-model")],
        "mock_server": ["mock-server", "--script", str(tmp / "no-script.toml")],
        "prm_label": ["prm-label", "--config", str(tmp / "none.toml"), "--out", str(tmp / "p")],
    }


@pytest.mark.parametrize("command", sorted(ARGV))
def test_bad_input_of_every_command_is_one_message(command, tmp_path, capsys):
    argv = _bad_inputs(tmp_path)[command]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err


def test_digits_that_cannot_be_drawn_is_a_clean_message(tmp_path, capsys):
    """`digits = 1` asked for 1,400 distinct pairs of 81: a raw ValueError traceback before issue 26."""
    argv = _bad_inputs(tmp_path)["run"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "[tasks] digits" in err and "only 81 distinct pairs" in err and "n_train" in err
    assert not (tmp_path / "r").exists()  # refused before the run directory is made


# --- a real Ctrl-C in `selfplay run` --------------------------------------------------------------------------------

RUN = """
[model]
name = "micro-llama"
backend = "local"
[local]
threads = 1
[tasks]
builtin = "addition"
style = "short"
n_seed = 16
n_train = 64
n_eval = 8
[generate]
k = 4
max_tokens = 8
[train]
cold_start_steps = 2
settings = { batch_size = 8, max_steps = 2 }
[eval]
k = 2
[loop]
rounds = 1
require_improvement = false
"""


def _selfplay_run(config: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "selfplay", "run", str(config), "--out", str(out), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **env})


def test_ctrl_c_in_selfplay_run_exits_130_without_traceback_and_resumes(tmp_path, where="round1:direct:chunk"):
    """A SIGINT mid-sampling: asyncio.run cancels the loop (the CancelledError traceback of the issue); the plain
    KeyboardInterrupt path of every command is the in-process test above."""
    config = tmp_path / "run.toml"
    config.write_text(RUN)
    out = tmp_path / "out"
    stopped = _selfplay_run(config, out, SELFPLAY_CRASH_AT=where, SELFPLAY_CRASH_SIGNAL="INT")
    assert stopped.returncode == 130, stopped.stderr
    for word in ("Traceback", "KeyboardInterrupt", "CancelledError"):
        assert word not in stopped.stderr, stopped.stderr
    assert "run the same command to resume" in stopped.stderr
    again = _selfplay_run(config, out)
    assert again.returncode == 0, again.stderr
    assert [r["round"] for r in json.loads((out / "rounds.json").read_text())["rounds"]] == [0, 1]


# --- worker processes die silently with their parent ---------------------------------------------------------------

def test_a_math_worker_whose_parent_died_before_ready_exits_silently():
    """After `kill -9` of a job, a worker still starting wrote "ready" into a closed pipe: a BrokenPipeError
    traceback on the terminal before issue 26."""
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    os.close(from_child_r)  # the parent is gone: nobody reads the worker's replies
    worker = subprocess.run([sys.executable, "-m", "verifiers.math.worker_main", str(to_child_r), str(from_child_w),
                             "os.path:basename", "", "0"], pass_fds=(to_child_r, from_child_w), cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    os.close(to_child_r), os.close(to_child_w), os.close(from_child_w)
    assert worker.returncode == 0 and worker.stderr == "", worker.stderr
