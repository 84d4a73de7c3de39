"""Experiment tracking through accelerate's trackers: TensorBoard event files with the round records and the
trainer's steps at a global step across rounds; off by default; an unknown tracker is refused at load."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

pytest.importorskip("accelerate")

from selfplay.core.errors import UserError  # noqa: E402
from selfplay.tracking import Tracker, check_report_to, open_tracker  # noqa: E402


def read_scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the TFRecord event files under log_dir: {tag: [(step, value), ...]}."""
    from tensorboardX.proto.event_pb2 import Event

    out: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(log_dir.rglob("events.out.tfevents.*")):
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos:pos + 8])
            event = Event.FromString(data[pos + 12:pos + 12 + length])
            pos += 12 + length + 4
            for value in event.summary.value:
                out.setdefault(value.tag, []).append((event.step, value.simple_value))
    return out


def test_rounds_and_train_steps_reach_tensorboard(tmp_path):
    pytest.importorskip("tensorboardX")
    for round_, losses in ((1, [2.0, 1.5]), (2, [1.2, 1.0, 0.9])):
        log = tmp_path / "rounds" / str(round_) / "train" / "metrics.jsonl"
        log.parent.mkdir(parents=True)
        log.write_text("".join(json.dumps({"step": i + 1, "loss": x}) + "\n" for i, x in enumerate(losses)))
    rounds = [{"round": 0, "eval_pass@1": 0.1, "train": {"skipped": "no seed rows"}},
              {"round": 1, "eval_pass@1": 0.3, "yield": 0.5, "train": {"steps": 2, "final_loss": 1.5}},
              {"round": 2, "eval_pass@1": 0.4, "yield": 0.6, "train": {"steps": 3, "final_loss": 0.9}}]
    tracker = Tracker(["tensorboard"], tmp_path, "test", {"generate": {"k": 4}, "loop": {"rounds": 2}})
    for record in rounds:
        tracker.log_round(record, rounds)
    tracker.close()
    scalars = read_scalars(tmp_path / "tracking")
    assert scalars["round/eval_pass_1"] == [(0, pytest.approx(0.1)), (1, pytest.approx(0.3)), (2, pytest.approx(0.4))]
    assert scalars["round/train/steps"] == [(1, 2.0), (2, 3.0)]
    # round 2's steps continue after round 1's two steps
    assert scalars["train/loss"] == [(1, 2.0), (2, 1.5), (3, pytest.approx(1.2)), (4, 1.0), (5, pytest.approx(0.9))]


def test_off_by_default_and_unknown_trackers_refused(tmp_path):
    from selfplay.config.run import TrackingSection

    assert open_tracker(TrackingSection().names, tmp_path, {}) is None and not (tmp_path / "tracking").exists()
    with pytest.raises(UserError, match="choose from"):
        check_report_to(["tensorbored"])
    with pytest.raises(ValueError, match="tensorbored"):
        TrackingSection(report_to="tensorbored")
    assert TrackingSection(report_to="tensorboard").names == ["tensorboard"]
