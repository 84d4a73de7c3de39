"""`selfplay demo --seeds 0,1,2`: the summary across seeds (mean and spread per arm), its table and plot, computed on
hand-made per-seed results (the real runs take minutes per seed; their figures are in docs/trainer.md)."""

import base64

import pytest

from selfplay.jobs.demo_seeds import parse_seeds, seeds_plot, seeds_summary, seeds_table


def result(cold: float, grpo: list[float], control: list[float]) -> dict:
    return {"cold_start": cold, "per_arm": {"grpo": {"pass@1": grpo}, "control": {"pass@1": control}}}


RESULTS = {0: result(0.10, [0.2, 0.4], [0.15, 0.20]), 1: result(0.08, [0.1, 0.3], [0.10, 0.12]),
           2: result(0.12, [0.3, 0.5], [0.20, 0.22])}


def test_mean_and_spread_per_arm():
    summary = seeds_summary(RESULTS)
    grpo = summary["arms"]["grpo"]
    assert grpo["final"] == {"mean": 0.4, "sd": 0.1, "min": 0.3, "max": 0.5}
    assert grpo["per_seed"] == {"0": 0.4, "1": 0.3, "2": 0.5}
    assert grpo["gain_points"]["mean"] == pytest.approx(30.0)            # (30 + 22 + 38) / 3
    assert grpo["over_control_points"]["mean"] == pytest.approx(22.0)    # (20 + 18 + 28) / 3
    assert [r["mean"] for r in grpo["rounds"]] == [0.1, 0.2, 0.4]        # round 0: the cold start
    assert "over_control_points" not in summary["arms"]["control"]
    table = seeds_table(summary)
    assert "0.400 ± 0.100 (0.300..0.500)" in table and "+22.0 ± 5.3" in table
    assert base64.b64decode(seeds_plot(summary))[:4] == b"\x89PNG"


def test_parse_seeds():
    assert parse_seeds("0,1, 2") == (0, 1, 2)
    for bad in ("", "0,0", "a,1"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)
