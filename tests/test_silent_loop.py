"""Issue 26: a loop that cannot learn or learned nothing says so and exits non-zero; rejected and idle rounds are
marked with the reason and a hint; training shows its progress and its loss curve.

End to end (each exited 0 before): the README's `max_tokens = 6` with worked solutions is refused before anything is
trained (exit 1); a loop whose rounds have no training rows exits 5 with one message naming why and what to change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from selfplay.config.run import RunConfig
from selfplay.jobs.loop import improvement_problem
from selfplay.pipeline import guards
from selfplay.pipeline.report import loss_curves, markdown, round_status, write_report
from selfplay.progress import training_text
from tests.gen_helpers import ROOT

BASE = """
[model]
name = "micro-llama"
backend = "local"
[local]
threads = 1
[tasks]
builtin = "addition"
{tasks}
n_seed = 8
n_train = 8
n_eval = 8
[generate]
k = 2
max_tokens = {max_tokens}
[train]
{train}
settings = {{ batch_size = 8, max_steps = 2 }}
[eval]
k = 2
[loop]
rounds = 1
"""


def run(tmp: Path, *, tasks: str = 'style = "short"', max_tokens: int = 6, train: str = "cold_start_steps = 2"
        ) -> subprocess.CompletedProcess:
    config = tmp / "run.toml"
    config.write_text(BASE.format(tasks=tasks, max_tokens=max_tokens, train=train))
    return subprocess.run([sys.executable, "-m", "selfplay", "run", str(config), "--out", str(tmp / "out"),
                           "--no-progress"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "SELFPLAY_TORCH_THREADS": "1"})


def test_worked_solutions_cut_by_max_tokens_are_refused_before_training(tmp_path):
    """The issue's first case: every seed solution and answer cut ('7+8=15'), pass@1 0.000, exit 0."""
    result = run(tmp_path, tasks='style = "worked"', max_tokens=6)
    assert result.returncode == 1, result.stderr
    assert "seed solutions do not fit in [generate] max_tokens = 6" in result.stderr
    assert 'style = \\"short\\"' in result.stderr or 'style = "short"' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "checkpoints" / "round-0").exists()  # nothing trained


def test_a_loop_with_no_training_rows_exits_5_with_what_to_change(tmp_path):
    """No cold start: the untrained micro model never passes, so round 1 has no rows: said, exit 5."""
    result = run(tmp_path, train="cold_start_epochs = 0\nreplay_seed = false")
    assert result.returncode == 5, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith("error: the loop learned nothing"), result.stderr
    assert "round 1: none of 16 samples passed the verifier" in errors[0]
    assert "cold start" in errors[0] and "require_improvement = false" in errors[0]
    assert "Traceback" not in result.stderr
    rounds = json.loads((tmp_path / "out" / "rounds.json").read_text())["rounds"]
    assert rounds[1]["train"]["skipped"] == "no training rows"  # the run itself is recorded
    assert "trained nothing" in (tmp_path / "out" / "report.md").read_text()
    again = subprocess.run([sys.executable, "-m", "selfplay", "run", str(tmp_path / "run.toml"), "--out",
                            str(tmp_path / "out"), "--no-progress", "--set", "loop.require_improvement=false"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr  # accepted on purpose: the same finished run


def _config(**loop) -> RunConfig:
    return RunConfig.model_validate({"model": {"name": "micro-llama"}, "tasks": {"builtin": "addition"},
                                     "loop": {"rounds": 2, **loop}})


def _round(n: int, pass1: float, **extra) -> dict:
    return {"round": n, "eval_pass@1": pass1, "eval_pass@k": pass1, "samples": 64, "passed": 10,
            "train": {"steps": 5}, **extra}


def test_never_rose_is_a_problem_and_rising_is_not():
    flat = [_round(0, 0.2), _round(1, 0.2), _round(2, 0.15)]
    problem = improvement_problem(flat, _config())
    assert "held-out pass@1 never rose above round 0's 0.200 (best kept: 0.200 in round 1)" in problem
    assert improvement_problem([_round(0, 0.2), _round(1, 0.25), _round(2, 0.2)], _config()) is None
    assert improvement_problem(flat, _config(require_improvement=False)) is None
    assert improvement_problem(flat, _config(arm="control")) is None


def test_a_rise_only_in_a_rejected_round_does_not_count():
    rejected = _round(1, 0.2, rejected=True, reasons=["x"], rejected_eval={"eval_pass@1": 0.4})
    problem = improvement_problem([_round(0, 0.2), rejected, _round(2, 0.1)], _config())
    assert "never rose" in problem and "rounds 1 were rejected by the guards" in problem


def test_a_rejected_round_carries_a_hint_and_is_marked_in_the_report(tmp_path):
    reasons = guards.check_round({"eval_pass@1": 0.043}, {"eval_pass@1": 0.099, "round": 0},
                                 SimpleNamespace(enabled=True, max_pass_drop=0.05, max_kl=None, min_entropy=None,
                                                 max_entropy=None, max_chosen_logp_drop=None))
    record = guards.rejected_record({"round": 1, "eval_pass@1": 0.043}, {"round": 0, "eval_pass@1": 0.099}, reasons)
    assert "max_steps or lr" in record["hint"]
    idle = {"round": 2, "eval_pass@1": 0.099, "train": {"skipped": "no training rows", "steps": 0}, "passed": 0,
            "samples": 64}
    rounds = [{"round": 0, "eval_pass@1": 0.099}, record, idle]
    assert round_status(rounds[0]) == "yes" and round_status(record).startswith("rejected: held-out pass@1 fell")
    text = markdown(rounds, "t")
    assert "| rejected |" in text and "| trained nothing |" in text
    assert "(hint: train less per round" in text and "0 of 64 samples passed" in text
    assert "$30M" not in text  # the filler line is gone


def test_loss_curves_are_read_from_every_round_and_plotted(tmp_path):
    for round_, losses in ((0, [2.0, 1.5]), (1, [1.4, 1.2])):
        folder = tmp_path / "rounds" / str(round_) / "train"
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text("".join(json.dumps({"step": 10 * (i + 1), "loss": v}) + "\n"
                                                      for i, v in enumerate(losses)) + "{cut")
    grpo = tmp_path / "rounds" / "2" / "train" / "iter-0"
    grpo.mkdir(parents=True)
    (grpo / "metrics.jsonl").write_text(json.dumps({"step": 3, "loss": 0.5}) + "\n")
    (grpo.parent / "iter-1").mkdir()
    (grpo.parent / "iter-1" / "metrics.jsonl").write_text(json.dumps({"step": 2, "loss": 0.4}) + "\n")
    curves = loss_curves(tmp_path)
    assert curves == {0: [(10, 2.0), (20, 1.5)], 1: [(10, 1.4), (20, 1.2)], 2: [(3, 0.5), (5, 0.4)]}
    write_report([{"round": r, "eval_pass@1": 0.1} for r in range(3)], tmp_path)
    assert 'alt="training loss"' in (tmp_path / "report.html").read_text()


def test_training_progress_text_has_step_loss_rate_and_eta():
    text = training_text({"step": 40, "total_steps": 300, "loss": 1.23456, "tokens_per_s": 812.4, "eta_s": 65.2})
    assert text == "step 40/300  loss 1.235  812 tok/s  ETA 0:01:05"


def test_the_trainer_reports_each_logged_step_to_a_listener(tmp_path):
    from trainer.progress import Progress, listening

    seen = []
    with listening(seen.append):
        progress = Progress("sft", 20, "off", str(tmp_path / "m.jsonl"))
        progress.add_tokens(100)
        progress.log(10, {"loss": 1.0})
    Progress("sft", 20, "off").log(20, {"loss": 0.5})  # after the block: nobody listens
    assert [(r["step"], r["total_steps"], r["loss"]) for r in seen] == [(10, 20, 1.0)]
    assert seen[0]["tokens_per_s"] > 0 and "eta_s" in seen[0]


def test_the_live_display_counts_optimizer_steps_of_a_training_phase():
    from selfplay.progress import PhaseProgress

    with PhaseProgress(enabled=False) as progress:
        progress.phase("self_improve: round 0 cold-start SFT on 300 rows", 1)
        progress.training({"step": 40, "total_steps": 300, "loss": 1.5, "tokens_per_s": 600.0, "eta_s": 30.0})
        task = progress._progress.tasks[0]
        assert (task.completed, task.total) == (40, 300)
        assert task.description == ("self_improve: round 0 cold-start SFT on 300 rows  step 40/300  loss 1.500  "
                                    "600 tok/s  ETA 0:00:30")


def test_the_round_table_of_selfplay_run_marks_rejected_and_idle_rounds():
    from selfplay.cli.run import round_table

    rejected = {"round": 1, "eval_pass@1": 0.099, "rejected": True, "reasons": ["held-out pass@1 fell 0.099 -> 0.043"],
                "hint": "train less per round"}
    grpo_idle = {"round": 2, "eval_pass@1": 0.099, "train": {"steps": 0, "iterations": 3}, "samples": 64, "passed": 0}
    table = round_table([{"round": 0, "eval_pass@1": 0.099}, rejected, grpo_idle])
    lines = table.splitlines()
    assert lines[1].endswith("yes") and lines[2].endswith("rejected") and lines[3].endswith("trained nothing")
    assert "round 1 rejected: held-out pass@1 fell 0.099 -> 0.043 (hint: train less per round)" in table
    assert "round 2 trained nothing: no training rows (no signal), 0 of 64 samples passed" in table


def test_references_no_answer_can_state_are_refused():
    import pytest

    from selfplay.core.errors import UserError
    from selfplay.tasks.loop import LoopTasks, check_fits
    from selfplay.tasks.task import Task

    tasks = LoopTasks([Task(id=f"t{i}", prompt="p", answer="1 2 3 4 5 6") for i in range(3)],
                      [Task(id="e", prompt="q", answer="7")])
    words = lambda text: len(text.split())  # noqa: E731 - a token counter for the test
    with pytest.raises(UserError, match="3 of 3 training references are longer than max_tokens = 4"):
        check_fits(tasks, words, 4, 4)
    check_fits(tasks, words, 6, 6)  # they fit: nothing raised
