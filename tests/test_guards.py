"""Guards: a round trained with a deliberately harmful lr is rejected and the previous checkpoint kept; the
decision rules against hand-made records."""

from __future__ import annotations

import json
from pathlib import Path

from selfplay.pipeline.guards import check_round, last_kept, rejected_record
from selfplay.config.run import GuardsSection
from tests.test_cli_run import CONFIG, selfplay


def test_pass_drop_rejects_and_the_record_says_why():
    guards = GuardsSection(max_pass_drop=0.05)
    previous = {"round": 1, "eval_pass@1": 0.40, "eval_pass@k": 0.7}
    assert check_round({"round": 2, "eval_pass@1": 0.36}, previous, guards) == []
    reasons = check_round({"round": 2, "eval_pass@1": 0.30, "eval_pass@k": 0.5}, previous, guards)
    assert len(reasons) == 1 and "0.400 -> 0.300" in reasons[0]
    record = rejected_record({"round": 2, "eval_pass@1": 0.30, "eval_pass@k": 0.5}, previous, reasons)
    assert record["rejected"] and record["kept_round"] == 1 and record["eval_pass@1"] == 0.40
    assert record["rejected_eval"] == {"eval_pass@1": 0.30, "eval_pass@k": 0.5}
    assert check_round({"round": 2, "eval_pass@1": 0.0}, previous, GuardsSection(enabled=False)) == []


def test_kl_entropy_and_chosen_logp_bounds():
    guards = GuardsSection(max_pass_drop=None, max_kl=0.5, min_entropy=0.1, max_chosen_logp_drop=3.0)
    ok = {"monitors": {"kl_to_cold_start": 0.4, "policy_entropy": 0.2}, "train": {"chosen_logp_delta": -2.0}}
    assert check_round(ok, None, guards) == []
    bad = {"monitors": {"kl_to_cold_start": 0.6, "policy_entropy": 0.05}, "train": {"chosen_logp_delta": -4.6}}
    reasons = check_round(bad, None, guards)
    assert [r.split()[0] for r in reasons] == ["KL", "policy", "DPO"]
    hacked = {"audit": {"alarm": True, "disagreement_rate": 0.9, "audited": 10}}
    assert check_round(hacked, None, guards) == []  # the alarm is shown, not a rejection, unless asked
    assert "90% of 10" in check_round(hacked, None, GuardsSection(reject_on_audit_alarm=True))[0]


def test_last_kept_skips_rejected_rounds():
    rounds = [{"round": 0}, {"round": 1}, {"round": 2, "rejected": True}]
    assert last_kept(rounds, 3)["round"] == 1
    assert last_kept(rounds, 1)["round"] == 0


def _run(tmp: Path, lr: float, crash_at: str | None = None) -> list[dict]:
    config = CONFIG.format(budget="").replace("rounds = 2", "rounds = 1")
    config = config.replace("cold_start_epochs = 1", "cold_start_epochs = 0")
    config = config.replace("lr = 3e-3", f"lr = {lr}") + "\n[guards]\nmax_kl = 1.0\n"
    (tmp / "run.toml").write_text(config)
    if crash_at:
        killed = selfplay("run", str(tmp / "run.toml"), "--out", str(tmp / "out"), "--no-progress", crash_at=crash_at)
        assert killed.returncode == -9, killed.stderr
    result = selfplay("run", str(tmp / "run.toml"), "--out", str(tmp / "out"), "--no-progress")
    assert result.returncode == 0, result.stderr
    return json.loads((tmp / "out" / "rounds.json").read_text())["rounds"]


def _weights(tmp: Path, round_: int) -> bytes:
    return (tmp / "out" / "checkpoints" / f"round-{round_}" / "model.safetensors").read_bytes()


def test_harmful_lr_round_is_rejected_and_previous_checkpoint_kept(tmp_path):
    harmful = tmp_path / "harmful"
    harmful.mkdir()
    rounds = _run(harmful, 3.0, crash_at="round1:guarded")  # killed between the decision and the restore
    assert rounds[1]["rejected"] is True and any("KL" in r for r in rounds[1]["reasons"])
    assert rounds[1]["monitors"]["kl_to_cold_start"] > 1.0
    assert _weights(harmful, 1) == _weights(harmful, 0)
    gentle = tmp_path / "gentle"
    gentle.mkdir()
    rounds = _run(gentle, 1e-3)
    assert not rounds[1].get("rejected") and rounds[1]["monitors"]["kl_to_cold_start"] < 1.0
    assert _weights(gentle, 1) != _weights(gentle, 0)
