"""The one resume check: a run directory is continued only with a config that agrees on its pinned keys.

What it is for: every job (`selfplay generate`, `run`, `prm-label`) declares in its config module a
`PINNED` table, {section: (key, ...)}, of what decides the meaning of its results; `check_resume`
compares those keys with the directory's `config.json` and refuses a difference with one message
naming the key, both values and the fix. A run written before a section existed did not record it:
it ran with that section's defaults, so the comparison uses them (`_section_default`). A directory
that produced nothing yet (a first start that failed) never blocks a corrected config.
What it does not do: write anything (a refusal leaves the directory as it was), or compare keys that
are not pinned (budget, concurrency, display may change between sessions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from selfplay.core.errors import UserError
from selfplay.core.view import run_dir_produced

__all__ = ["Pinned", "check_resume", "pinned_differences"]

Pinned = dict[str, tuple[str, ...]]


def check_resume(config: BaseModel, run_dir: str | Path, pinned: Pinned) -> None:
    """Refuse to resume `run_dir` with a config whose `pinned` keys differ from its `config.json`."""
    run_dir = Path(run_dir)
    previous_path = run_dir / "config.json"
    if not previous_path.exists() or not run_dir_produced(run_dir):
        return
    try:
        previous = json.loads(previous_path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{previous_path}: unreadable ({exc}); choose another --out") from exc
    differences = pinned_differences(config, previous, pinned)
    if not differences:
        return
    lines = [f"{section}.{key} = {old!r}, but this config says {new!r}" for section, key, old, new in differences]
    keys = ", ".join(f"{section}.{key}" for section, key, _, _ in differences)
    if len(lines) == 1:
        section, key, old, new = differences[0]
        raise UserError(f"{run_dir} holds a run with {section}.{key} = {old!r}, but this config says {new!r}; "
                        f"{section}.{key} decides what the run's results mean, so resume with the same value "
                        f"or choose another --out")
    raise UserError(f"{run_dir} holds a run whose pinned keys differ from this config ({keys}); they decide what "
                    f"the run's results mean, so resume with the same values or choose another --out:\n  "
                    + "\n  ".join(lines))


def pinned_differences(config: BaseModel, previous: dict[str, Any],
                       pinned: Pinned) -> list[tuple[str, str, Any, Any]]:
    """(section, key, value in the run, value in `config`) for every pinned key that differs."""
    current = config.model_dump(mode="json")
    out = []
    for section, keys in pinned.items():
        before = previous[section] if section in previous else _section_default(config, section)
        for key in keys:
            old, new = (before or {}).get(key), (current.get(section) or {}).get(key)
            if old != new:
                out.append((section, key, old, new))
    return out


def _section_default(config: BaseModel, section: str) -> dict[str, Any] | None:
    """A section that a run written before it existed did not record: that run used its defaults."""
    field = type(config).model_fields.get(section)
    default = field.get_default(call_default_factory=True) if field is not None else None
    return default.model_dump(mode="json") if isinstance(default, BaseModel) else None
