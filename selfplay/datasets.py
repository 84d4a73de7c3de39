"""Training datasets in the formats TRL and HF `datasets` load directly, built from selected candidates.

What it is for: turning `Scored` candidates into rows, and writing them as JSONL and Parquet:
- SFT: `{"messages": [...]}` (prompt + generated turns)
- preference: `{"prompt": [...], "chosen": [...], "rejected": [...]}` (conversational)
- RL groups: `{"prompt": [...], "completions": [...], "rewards": [...]}`
- PRM: `{"prompt": str, "completions": [step, ...], "labels": [bool, ...]}`
What it does not do: choose candidates (`selfplay.select`) or train (`trainer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from selfplay.select import Scored
from selfplay.store.export import write_jsonl, write_parquet


def sft_row(cand: Scored) -> dict[str, Any]:
    return {"messages": [*cand.prompt, *cand.completion]}


def preference_row(chosen: Scored, rejected: Scored) -> dict[str, Any]:
    return {"prompt": list(chosen.prompt), "chosen": list(chosen.completion), "rejected": list(rejected.completion)}


def rl_row(group: Sequence[Scored], rewards: Sequence[float]) -> dict[str, Any]:
    return {"prompt": list(group[0].prompt), "completions": [c.text for c in group], "rewards": list(rewards)}


def prm_row(prompt: str, steps: Sequence[str], labels: Sequence[bool]) -> dict[str, Any]:
    if len(steps) != len(labels):
        raise ValueError(f"PRM row needs one label per step, got {len(steps)} steps and {len(labels)} labels")
    return {"prompt": prompt, "completions": list(steps), "labels": [bool(x) for x in labels]}


def write_dataset(rows: list[dict[str, Any]], path_stem: str | Path, parquet: bool = True) -> dict[str, str]:
    """Write `stem.jsonl` (and `stem.parquet`); returns the paths written."""
    stem = Path(path_stem)
    paths = {"jsonl": str(stem.with_suffix(".jsonl"))}
    write_jsonl(rows, paths["jsonl"])
    if parquet and rows:
        paths["parquet"] = str(stem.with_suffix(".parquet"))
        write_parquet(rows, paths["parquet"])
    return paths
