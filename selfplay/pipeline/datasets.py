"""Training datasets in the formats TRL and HF `datasets` load directly, built from selected candidates.

What it is for: turning verified `Candidate`s into rows (each row names its candidates in `candidate_ids`), and writing them as JSONL and Parquet:
- SFT: `{"messages": [...]}` (prompt + generated turns)
- preference: `{"prompt": [...], "chosen": [...], "rejected": [...]}` (conversational)
- RL groups: `{"prompt": [...], "completions": [...], "rewards": [...]}`
- PRM: `{"prompt": str, "completions": [step, ...], "labels": [bool, ...]}`
Where the backend returned the sampled tokens, rows also carry them (extra keys: TRL ignores them, `trainer`
trains on them instead of re-encoding the text, see `trainer.encode`); each list is the LAST message of its
completion exactly as sampled (eos included only when the sample ended on it):
- SFT: `"completion_token_ids": [int, ...]` (of `messages[-1]`);
- preference: `"chosen_token_ids"`, `"rejected_token_ids"`;
- RL groups: `"completion_token_ids": [[int, ...] | None, ...]` and `"completion_logprobs": [[float, ...] | None,
  ...]` (one entry per completion; log-probs of the sampling policy, unscaled distribution: GRPO's old log-probs).
What it does not do: choose candidates (`selfplay.pipeline.select`) or train (`trainer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from selfplay.core.candidate import Candidate
from selfplay.core.files import write_jsonl, write_parquet


def sft_row(cand: Candidate) -> dict[str, Any]:
    row: dict[str, Any] = {"messages": [*cand.prompt, *cand.completion], "candidate_ids": [cand.id]}
    if cand.token_ids:
        row["completion_token_ids"] = list(cand.token_ids)
    return row


def preference_row(chosen: Candidate, rejected: Candidate) -> dict[str, Any]:
    row: dict[str, Any] = {"prompt": list(chosen.prompt), "chosen": list(chosen.completion),
                           "rejected": list(rejected.completion), "candidate_ids": [chosen.id, rejected.id]}
    if chosen.token_ids and rejected.token_ids:
        row.update(chosen_token_ids=list(chosen.token_ids), rejected_token_ids=list(rejected.token_ids))
    return row


def rl_row(group: Sequence[Candidate], rewards: Sequence[float]) -> dict[str, Any]:
    row: dict[str, Any] = {"prompt": list(group[0].prompt), "completions": [c.text for c in group],
                           "rewards": list(rewards), "candidate_ids": [c.id for c in group]}
    if any(c.token_ids for c in group):
        row["completion_token_ids"] = [list(c.token_ids) if c.token_ids else None for c in group]
        row["completion_logprobs"] = [list(c.logprobs) if c.token_ids and c.logprobs else None for c in group]
    return row


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
