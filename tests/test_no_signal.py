"""The "no signal" measure on every round record, and the report's flag.

A group (the K samples of one task) teaches GRPO only when its rewards differ, DPO only when it makes a passed /
failed pair, SFT only when something passed. `Algorithm.signal` counts such groups; `RoundContext.training_rows`
puts it in `record["selection"]["signal"]`; the report flags a round whose share is below `NO_SIGNAL_SHARE`.
"""

from __future__ import annotations

from types import SimpleNamespace

from selfplay.jobs.algorithms import get as get_algorithm
from selfplay.jobs.round import RoundContext
from selfplay.pipeline.metrics import by_task
from selfplay.pipeline.report import markdown
from selfplay.pipeline.select import NO_SIGNAL_SHARE, signal, has_pass
from selfplay.tasks.loop import LoopTasks
from tests.candidates import verified


def group(task: str, outcomes: list[bool]) -> list:
    return [verified(task, i, f"answer {i} {'right' if ok else 'wrong'}", ok) for i, ok in enumerate(outcomes)]


ALL_WRONG, ALL_RIGHT, MIXED = [False] * 4, [True] * 4, [True, False, False, False]


def groups(*outcomes: list[bool]) -> dict[str, list]:
    return {f"t{i}": group(f"t{i}", o) for i, o in enumerate(outcomes)}


def test_each_algorithm_counts_its_own_signal():
    batch = groups(ALL_WRONG, ALL_WRONG, ALL_RIGHT, MIXED)
    assert get_algorithm("grpo").signal(batch) == {"groups": 4, "mixed": 1, "share": 0.25, "no_signal": False}
    assert get_algorithm("dpo").signal(batch)["mixed"] == 1        # only the mixed task makes a pair
    assert get_algorithm("sft").signal(batch)["mixed"] == 2        # the all-right task teaches SFT too


def test_all_equal_groups_are_flagged_no_signal():
    batch = groups(*[ALL_WRONG] * 30, *[ALL_RIGHT] * 10)
    assert get_algorithm("grpo").signal(batch) == {"groups": 40, "mixed": 0, "share": 0.0, "no_signal": True}
    assert get_algorithm("sft").signal(batch)["no_signal"] is False
    one_in_forty = groups(*[ALL_WRONG] * 39, MIXED)
    assert get_algorithm("grpo").signal(one_in_forty)["share"] == 0.025 < NO_SIGNAL_SHARE
    assert signal([], has_pass) == {"groups": 0, "mixed": 0, "share": 0.0, "no_signal": True}


def test_training_rows_put_the_signal_in_the_selection_record():
    ctx = SimpleNamespace(cfg=SimpleNamespace(select=SimpleNamespace(decontaminate_n=None, max_pairs=4)),
                          tasks=LoopTasks(train=[], eval=[]))
    items = [c for g in groups(ALL_WRONG, MIXED, MIXED).values() for c in g]
    rows, selection = RoundContext.training_rows(ctx, get_algorithm("grpo"), items)
    assert len(rows) == 2
    assert selection["signal"] == {"groups": 3, "mixed": 2, "share": 0.6667, "no_signal": False}
    assert by_task(items).keys() == {"t0", "t1", "t2"}


def record(round_: int, share: float, mixed: int, flagged: bool) -> dict:
    return {"round": round_, "eval_pass@1": 0.1, "eval_pass@k": 0.2, "samples": 800,
            "selection": {"rows": mixed, "signal": {"groups": 100, "mixed": mixed, "share": share,
                                                    "no_signal": flagged}}}


def test_the_report_flags_a_round_with_no_signal():
    rounds = [{"round": 0, "eval_pass@1": 0.1, "eval_pass@k": 0.2}, record(1, 0.31, 31, False),
              record(2, 0.02, 2, True)]
    text = markdown(rounds, "run")
    assert "signal share" in text and "| 0.31 |" in text
    assert "## No learning signal" in text
    assert "round 2: no signal: 2 of 100 tasks' groups carry a learning signal (share 0.02)" in text
    assert "round 1: no signal" not in text
    assert "## No learning signal" not in markdown(rounds[:2], "run")
