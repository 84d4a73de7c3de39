"""`open_run`: the one way a job opens its run directory (generate, the loop, prm-label).

What it is for: the steps every resumable job takes, in the one safe order:
  1. the resume check (`selfplay.config.resume.check_resume` against the job's `PINNED`): before any
     write, so a refusal leaves the directory exactly as it was;
  2. the run store (`selfplay.core.store.RunStore`): creates the directory, takes its lock (a second
     process on the same directory is refused before it writes anything), migrates an older store;
  3. `config.json`, the resolved config (written under the lock);
  4. the tasks, into the store;
  5. the budget ledger over the store (earlier sessions' spending counted, their in-flight requests orphaned).
It lives in `jobs` because it joins two tiers below it (config's resume check, core's store); `core` itself
imports no config.
What it does not do: load tasks or build models (each job does, before or inside the `with`), or close
anything but the store (the job's backends and executors are its own).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.money.ledger import BudgetLedger, Caps
from selfplay.config.common import write_resolved
from selfplay.config.resume import Pinned, check_resume
from selfplay.core.store import RunStore

__all__ = ["OpenRun", "open_run"]


@dataclass
class OpenRun:
    """A run directory opened by `open_run`: its path, its store and its budget ledger."""

    dir: Path
    store: RunStore
    ledger: BudgetLedger


@contextlib.contextmanager
def open_run(config: Any, run_dir: str | Path, pinned: Pinned, tasks: Iterable[Any]) -> Iterator[OpenRun]:
    """Open `run_dir` for a job with `config` (a pydantic config with a `budget` section) and its `tasks`
    (`Task` records); the store is closed (everything committed) on the way out."""
    run_dir = Path(run_dir)
    check_resume(config, run_dir, pinned)  # nothing is written before this: a refusal leaves the directory as it was
    with RunStore(run_dir) as store:
        write_resolved(config, run_dir)
        store.put_tasks([task.model_dump(mode="json") for task in tasks])
        ledger = BudgetLedger(Caps(**config.budget.model_dump()), backend=store)
        yield OpenRun(run_dir, store, ledger)
