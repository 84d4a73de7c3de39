"""Experiment tracking of `selfplay run` through accelerate's trackers (TensorBoard, W&B, trackio, ... when installed).

What it is for: `[tracking] report_to = "tensorboard"` (or a list) sends each round's record (pass@1, pass@k, yield,
cost, train metrics...) at step = round, and every trainer log line of the round (`rounds/R/train/metrics.jsonl`)
at a global step that continues across rounds, under `DIR/tracking/`. Off by default (`report_to = []`).
What it does not do: install trackers (a configured one that is not installed is refused at start with the
package to install), or replace `metrics.jsonl` / `rounds.json`, which are always written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfplay.core.errors import UserError
from selfplay.core.files import read_jsonl_log

PACKAGES = {"tensorboard": "tensorboardX (or tensorboard)", "wandb": "wandb", "trackio": "trackio",
            "mlflow": "mlflow", "aim": "aim", "comet_ml": "comet_ml", "clearml": "clearml", "dvclive": "dvclive",
            "swanlab": "swanlab"}


def check_report_to(names: list[str]) -> None:
    """Refuse an unknown or uninstalled tracker before anything runs."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS
    from accelerate.utils import imports

    for name in names:
        if name not in LOGGER_TYPE_TO_CLASS:
            raise UserError(f"[tracking] report_to = {name!r}: choose from {', '.join(sorted(LOGGER_TYPE_TO_CLASS))}")
        available = getattr(imports, f"is_{name}_available", None)
        if available is not None and not available():
            raise UserError(f"[tracking] report_to = {name!r}: not installed; pip install {PACKAGES.get(name, name)}")


class Tracker:
    """The configured accelerate trackers of one run directory."""

    def __init__(self, names: list[str], run_dir: str | Path, run_name: str, config: dict[str, Any]) -> None:
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        check_report_to(names)
        self.run_dir = Path(run_dir)
        self.trackers = []
        for name in names:
            cls = LOGGER_TYPE_TO_CLASS[name]
            tracker = (cls(run_name, str(self.run_dir / "tracking")) if cls.requires_logging_directory
                       else cls(run_name))
            tracker.start()
            tracker.store_init_configuration(flatten(config))
            self.trackers.append(tracker)

    def log(self, values: dict[str, Any], step: int) -> None:
        numbers = {k: v for k, v in flatten(values).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers:
            for tracker in self.trackers:
                tracker.log(numbers, step=step)

    def log_round(self, record: dict[str, Any], done_rounds: list[dict[str, Any]]) -> None:
        """The round's record at step = round, then its trainer log lines at a global step after the rounds
        before it (the sum of their `train.steps`)."""
        round_ = int(record["round"])
        self.log({"round": record}, step=round_)
        offset = sum(int((r.get("train") or {}).get("steps") or 0) for r in done_rounds if r["round"] < round_)
        for line in read_jsonl_log(self.run_dir / "rounds" / str(round_) / "train" / "metrics.jsonl"):
            step = line.get("step")
            if isinstance(step, int):
                self.log({"train": {k: v for k, v in line.items() if k != "step"}, "train/round": round_},
                         step=offset + step)

    def close(self) -> None:
        for tracker in self.trackers:
            tracker.finish()


def open_tracker(names: list[str], run_dir: str | Path, config: dict[str, Any]) -> Tracker | None:
    return Tracker(names, run_dir, Path(run_dir).name or "run", config) if names else None



def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as `a/b` keys; lists and None are left out (trackers take scalars and strings)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        elif isinstance(value, (int, float, str, bool)):
            out[name] = value
    return out
