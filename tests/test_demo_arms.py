"""`selfplay demo --arms`: every arm from one cold start, one table, demo.json with per-arm samples, steps, cost and
wall time (a --quick smoke run: tiny sizes; the real figures are in the README, not asserted here)."""

import json

import pytest

from selfplay.jobs.demo import arm_config, arm_summary, demo_config, parse_arms
from tests.test_cli_run import selfplay

ALL = "sft,dpo,grpo,majority,control"


@pytest.mark.timeout(900)
def test_all_arms_share_the_cold_start_and_report_samples_steps_cost_and_wall_time(tmp_path):
    out = tmp_path / "demo"
    result = selfplay("demo", "--quick", "--rounds", "1", "--seed", "2", "--arms", ALL, "--out", str(out),
                      "--no-progress", timeout=900)  # five arms: about a minute on an idle 2-core machine
    assert result.returncode == 0, result.stderr
    figures = json.loads((out / "demo.json").read_text())
    assert set(figures["arms"]) == {"sft", "dpo", "grpo", "majority"}
    assert all(len(v) == 1 and 0.0 <= v[0] <= 1.0 for v in figures["arms"].values())
    assert len(figures["control"]) == 1 and figures["self_improve"] == figures["arms"]["sft"]  # old keys kept
    for arm in ("sft", "dpo", "grpo", "majority", "control"):
        summary = figures["per_arm"][arm]
        assert summary["wall_s"] > 0 and summary["cost_usd"] >= 0 and len(summary["steps_per_round"]) == 1
        assert ("usd_per_point" in summary) and summary["pass@1"] == figures["arms"].get(arm, figures["control"])
    for arm in ("sft", "dpo", "grpo", "majority"):  # every learner sampled the same round budget
        assert figures["per_arm"][arm]["samples_per_round"] == figures["per_arm"]["sft"]["samples_per_round"]
    assert figures["per_arm"]["control"]["steps_per_round"] == figures["per_arm"]["sft"]["steps_per_round"]
    # one cold start, copied: the same round-0 weights and the same round-0 pass@1 in every arm
    weights = {arm: (out / arm / "checkpoints" / "round-0" / "model.safetensors").read_bytes()
               for arm in ("self_improve", "dpo", "grpo", "majority", "control")}
    assert len(set(weights.values())) == 1
    # each arm ran its own algorithm / rule
    algorithms = {arm: json.loads((out / arm / "config.json").read_text())["train"]["algorithm"]
                  for arm in ("self_improve", "dpo", "grpo", "majority")}
    assert algorithms == {"self_improve": "sft", "dpo": "dpo", "grpo": "grpo", "majority": "sft"}
    assert json.loads((out / "majority" / "config.json").read_text())["select"]["rule"] == "majority"
    # one table with a column per arm, and the per-arm summary lines
    for name in ("sft pass@1", "dpo pass@1", "grpo pass@1", "majority pass@1", "control pass@1", "USD/point"):
        assert name in result.stdout, result.stdout
    assert (out / "report.html").is_file() and "dpo" in (out / "report.md").read_text().lower()


def test_unknown_arm_is_one_clear_message(tmp_path):
    result = selfplay("demo", "--quick", "--arms", "sft,ppo", "--out", str(tmp_path / "d"), "--no-progress")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--arms" in result.stderr and "ppo" in result.stderr and "sft,dpo,grpo,majority,control" in result.stderr
    assert not (tmp_path / "d").exists()
    served = selfplay("demo", "--quick", "--serve", "--arms", "sft,dpo", "--out", str(tmp_path / "s"), "--no-progress")
    assert served.returncode != 0 and "--serve runs the sft and control arms only" in served.stderr
    assert not (tmp_path / "s").exists()


def test_arm_configs_change_only_the_arms_own_keys():
    assert parse_arms("control, dpo,sft") == ("sft", "dpo", "control")  # the demo's order, whatever the order given
    base = demo_config(0).model_dump()
    assert arm_config(0, "sft").model_dump() == base  # the default demo is unchanged
    dpo = arm_config(0, "dpo").model_dump()
    assert dpo["train"]["algorithm"] == "dpo" and dpo["train"]["settings"] == base["train"]["settings"]
    assert {k: v for k, v in dpo.items() if k not in ("train", "select")} == \
        {k: v for k, v in base.items() if k not in ("train", "select")}
    majority = arm_config(0, "majority").model_dump()
    assert majority["select"]["rule"] == "majority" and majority["train"] == base["train"]


def test_arm_summary_cost_per_point_from_the_rounds():
    rounds = [{"round": 0, "eval_pass@1": 0.1, "eval_pass@k": 0.2, "cost_usd": 9.0, "seconds": 5},
              {"round": 1, "eval_pass@1": 0.3, "eval_pass@k": 0.5, "cost_usd": 0.002, "seconds": 10, "samples": 80,
               "train": {"steps": 7}},
              {"round": 2, "eval_pass@1": 0.5, "eval_pass@k": 0.7, "cost_usd": 0.002, "seconds": 12, "samples": 80,
               "train": {"steps": 6}, "rejected": True}]
    s = arm_summary(rounds, wall_s=30.0)
    assert s["pass@1"] == [0.3, 0.5] and s["samples_per_round"] == [80, 80] and s["steps_per_round"] == [7, 6]
    assert s["cost_usd"] == 0.004 and s["seconds"] == 22 and s["rejected_rounds"] == [2]  # round 0 is shared
    assert s["points_gained"] == 40.0 and s["usd_per_point"] == 0.004 / 40
    assert arm_summary(rounds[:2] + [{**rounds[2], "eval_pass@1": 0.05}], 1.0)["usd_per_point"] is None
