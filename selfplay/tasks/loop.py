"""The task sources of a loop: a built-in family or JSONL files, plus the cold-start SFT rows.

What it is for: one `LoopTasks` value with the training pool, the held-out eval set (checked to be
disjoint from the pool by id and by prompt), the seed SFT rows, and lookups the phases need.
What it does not do: sample or verify.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from selfplay.core.errors import UserError
from selfplay.config.run import TasksSection
from selfplay.tasks.builtin import addition_splits
from selfplay.tasks.load import load_tasks
from selfplay.tasks.task import Task


@dataclass
class LoopTasks:
    train: list[Task]
    eval: list[Task]
    seed_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def by_id(self) -> dict[str, Task]:
        return {t.id: t for t in self.train + self.eval}

    @property
    def eval_prompts(self) -> list[str]:
        return [t.prompt if isinstance(t.prompt, str) else " ".join(m["content"] for m in t.prompt) for t in self.eval]


def load_loop_tasks(section: TasksSection, seed: int) -> LoopTasks:
    if section.builtin == "addition":  # config.run checks the pairs can be drawn; this is for callers without it
        try:
            splits = addition_splits(seed, digits=section.digits, n_seed=section.n_seed, n_train=section.n_train,
                                     n_eval=section.n_eval, style=section.style)
        except ValueError as exc:
            raise UserError(f"[tasks] {exc}") from None
        rows = [{"messages": [{"role": "user", "content": t.prompt}, {"role": "assistant", "content": s}]}
                for t, s in splits.seed_examples]
        tasks = LoopTasks(splits.train_pool, splits.eval_set, rows)
    else:
        tasks = LoopTasks(load_tasks(section.train), load_tasks(section.eval),
                          load_seed_rows(section.seed_sft) if section.seed_sft else [])
    _check_disjoint(tasks)
    return tasks


def load_seed_rows(path: str) -> list[dict[str, Any]]:
    """The cold-start SFT rows of `[tasks] seed_sft`; a UserError naming the file and line of a bad row."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"seed SFT file {path} does not exist; set [tasks] seed_sft to a JSONL file of "
                        f"{{\"messages\": [...]}} rows, or remove it")
    rows = []
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason}); save it as UTF-8 JSONL") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
            raise UserError(f"{path}:{number}: expected {{\"messages\": [...]}} (an SFT row)")
        turns = row["messages"]
        if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                   for m in turns):
            raise UserError(f"{path}:{number}: each message needs a \"role\" and a \"content\" string")
        if not any(m["role"] == "assistant" for m in turns):
            raise UserError(f"{path}:{number}: the row has no assistant turn, so there is nothing to train on; "
                            f"add {{\"role\": \"assistant\", \"content\": ...}} to its messages")
        rows.append(row)
    if not rows:
        raise UserError(f"{path}: no seed rows (expected one {{\"messages\": [...]}} object per line)")
    return rows


def check_fits(tasks: LoopTasks, count_tokens: Callable[[str], int], max_tokens: int, eval_max_tokens: int) -> None:
    """Refuse, before anything is trained or sampled, a loop whose answers cannot fit in what is sampled: most seed
    solutions longer than `[generate] max_tokens` (the cold start teaches answers every sample cuts before their
    end, so nothing passes), or most references longer than it (no candidate can state them)."""
    problems = []
    solutions = [_assistant_text(row) for row in tasks.seed_rows]
    if solutions:
        lengths = [count_tokens(text) + 1 for text in solutions]  # + 1: the end of turn that finishes an answer
        cut = sum(n > max_tokens for n in lengths)
        if cut * 2 > len(lengths):
            problems.append(f"{cut} of {len(lengths)} seed solutions do not fit in [generate] max_tokens = "
                            f"{max_tokens} (the longest is {max(lengths)} tokens with its end of turn): every answer "
                            f"the cold start teaches is cut before its end and no sample can pass; raise max_tokens to "
                            f"at least {max(lengths)}, or use shorter solutions (builtin: style = \"short\")")
    for label, pool, limit in (("training", tasks.train, max_tokens), ("held-out", tasks.eval, eval_max_tokens)):
        long = [t.id for t in pool if count_tokens(str(t.answer)) > limit]
        if len(long) * 2 > len(pool):
            problems.append(f"{len(long)} of {len(pool)} {label} references are longer than max_tokens = {limit} "
                            f"(e.g. task {long[0]!r}): no answer can state them; raise max_tokens")
    if problems:
        raise UserError("this loop cannot learn: " + "; ".join(problems))


def _assistant_text(row: dict[str, Any]) -> str:
    return [m["content"] for m in row["messages"] if m["role"] == "assistant"][-1]


def _check_disjoint(tasks: LoopTasks) -> None:
    train_ids = {t.id for t in tasks.train}
    train_prompts = {json.dumps(t.prompt) for t in tasks.train}
    for task in tasks.eval:
        if task.id in train_ids or json.dumps(task.prompt) in train_prompts:
            raise UserError(f"eval task {task.id!r} is also in the training pool; held-out tasks must be disjoint")
