"""Run directories as TRL / HF `datasets` files: candidates with their verdicts, each round's training rows, exports.

What it is for:
- `iter_candidates_with_verdicts(reader)`: every stored candidate with an `id` (`r{round}/{workflow}/{task}/{sample}`)
  and its verdicts (`verdict`: the one of the job's verifier when there is one, `verdicts`: all, by verifier), so
  `candidates.jsonl` says which candidate passed without SQL;
- `write_round_rows(run_dir, round, rows)`: `rounds/R/train.jsonl`, the rows round R trained on, each with the
  `candidate_ids` it came from;
- `export_run(run_dir, fmt, out, min_score)`: `selfplay export` — SFT / DPO / GRPO / PRM rows from a `generate` or
  `run` directory, as JSONL or Parquet (by the suffix of `out`). Held-out evaluation samples (workflow `eval`) are
  never exported: training on them would contaminate the evaluation. SFT rows are ready to train on by default:
  one row per distinct answer text of a task (`dedup`) and at most `cap_per_task` per task (K samples of one task
  would otherwise be K near-copies). `grpo` is our offline trainer's groups (prompt / completions / rewards);
  `grpo-prompts` is the prompt dataset TRL's GRPOTrainer reads: one row per training task with its conversational
  `prompt` and its reference in an `answer` column, which `verifiers.reward.as_reward_function` reads.
What it does not do: decide what a round trains on (`selfplay.jobs.algorithms`), or label PRM steps (`selfplay prm-label`
does; `--format prm` exports its `prm.jsonl`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from selfplay.core.candidate import Candidate
from selfplay.core.errors import UserError
from selfplay.core.files import write_jsonl, write_parquet
from selfplay.core.store import RunReader

EVAL_WORKFLOW = "eval"
FORMATS = ("sft", "dpo", "grpo", "grpo-prompts", "prm")
CAP_PER_TASK = 4   # SFT rows per task by default: [select] cap_per_task's default in the loop


def iter_candidates_with_verdicts(reader: RunReader, round_: int | None = None,
                                  verifier: str | None = None) -> Iterator[tuple[Candidate, dict[str, Any]]]:
    """(candidate with the job's verdict attached, its `candidates.jsonl` row), in task order, streamed."""
    for candidate, found in reader.iter_candidates_with_verdicts(round_):
        chosen = found.get(verifier) if verifier else None
        if chosen is None and len(found) == 1:
            chosen = next(iter(found.values()))
        candidate = candidate.with_verdict(chosen) if chosen is not None else candidate
        yield candidate, {**candidate.export_row(), "verdicts": found, "verdict": _brief_verdict(chosen)}


def _brief_verdict(verdict: dict[str, Any] | None) -> dict[str, Any] | None:
    if verdict is None:
        return None
    return {"passed": bool(verdict.get("passed")) and not verdict.get("error"), "score": float(verdict.get("score", 0.0)),
            "error": verdict.get("error"), "reason": verdict.get("reason")}


def write_candidates(run_dir: str | Path, path: str | Path | None = None, *, round_: int | None = None,
                     verifier: str | None = None) -> int:
    """`candidates.jsonl` of a run directory, each candidate with its verdicts; returns the count written."""
    run_dir = Path(run_dir)
    with RunReader(run_dir) as reader:
        return write_jsonl((row for _, row in iter_candidates_with_verdicts(reader, round_, verifier)),
                           path or run_dir / "candidates.jsonl")


def write_round_rows(run_dir: str | Path, round_: int, rows: list[dict[str, Any]]) -> Path:
    """`rounds/R/train.jsonl`: the rows round R trains on, each with the `candidate_ids` it was built from (seed
    rows: [])."""
    out = Path(run_dir) / "rounds" / str(round_)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "train.jsonl"
    write_jsonl(({**row, "candidate_ids": list(row.get("candidate_ids", []))} for row in rows), path)
    return path


def export_run(run_dir: str | Path, fmt: str, out: str | Path, *, min_score: float | None = None,
               max_pairs: int = 4, dedup: bool = True, cap_per_task: int | None = CAP_PER_TASK) -> dict[str, Any]:
    """Write `out` (.jsonl or .parquet) in `fmt`; returns {"rows", "path", "format"}. SFT: `dedup` keeps one row per
    distinct answer text of a task, `cap_per_task` at most that many rows per task (None: all)."""
    run_dir, out = Path(run_dir), Path(out)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if out.suffix not in (".jsonl", ".parquet"):
        raise UserError(f"--out {out}: the file name must end in .jsonl or .parquet")
    if cap_per_task is not None and cap_per_task < 1:
        raise UserError(f"--cap-per-task {cap_per_task}: must be at least 1 (or leave it out for no cap)")
    if fmt == "prm":
        rows = _prm_rows(run_dir, min_score)
    elif fmt == "grpo-prompts":
        rows = _prompt_rows(run_dir)
    else:
        with RunReader(run_dir) as reader:
            groups = _groups(reader, min_score)
        rows = _rows(groups, fmt, max_pairs)
        if fmt == "sft":
            rows = _sft_ready(rows, dedup, cap_per_task)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        if not rows:
            raise UserError(f"{run_dir}: no {fmt} rows to export (a Parquet file needs at least one row)")
        write_parquet(rows, out)
    else:
        write_jsonl(rows, out)
    return {"rows": len(rows), "path": str(out), "format": fmt}


def _groups(reader: RunReader, min_score: float | None) -> dict[tuple, list[tuple[Candidate, bool]]]:
    """Judged, error-free training candidates by (round, workflow, task), each with whether it counts as passed
    (passed, and score >= min_score when given)."""
    groups: dict[tuple, list[tuple[Candidate, bool]]] = {}
    for cand, row in iter_candidates_with_verdicts(reader):
        verdict = row["verdict"]
        if cand.workflow == EVAL_WORKFLOW or not cand.ok or verdict is None or verdict["error"]:
            continue
        passed = verdict["passed"] and (min_score is None or verdict["score"] >= min_score)
        groups.setdefault((cand.round, cand.workflow, cand.task_id), []).append((cand, passed))
    return groups


def _rows(groups: dict[tuple, list[tuple[Candidate, bool]]], fmt: str, max_pairs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for (_, _, task_id), group in groups.items():
        passed = [c for c, ok in group if ok]
        if fmt == "sft":
            for c in passed:
                rows.append({"messages": c.messages, "task_id": task_id, "score": c.score, "candidate_ids": [c.id]})
        elif fmt == "dpo":
            failed, seen = [], set()
            for c, ok in group:
                key = " ".join(str(c.final_answer).split()).lower()
                if not ok and key not in seen:
                    seen.add(key)
                    failed.append(c)
            for i, rejected in enumerate(failed[:max_pairs] if passed else []):
                chosen = passed[i % len(passed)]
                rows.append({"prompt": chosen.prompt, "chosen": chosen.completion, "rejected": rejected.completion,
                             "task_id": task_id, "candidate_ids": [chosen.id, rejected.id]})
        else:  # grpo: groups with a learning signal (rewards not all equal)
            rewards = [c.score for c, _ in group]
            if len(group) < 2 or max(rewards) == min(rewards):
                continue
            rows.append({"prompt": group[0][0].prompt, "completions": [c.final_answer for c, _ in group],
                         "rewards": rewards, "task_id": task_id, "candidate_ids": [c.id for c, _ in group]})
    return rows


def _sft_ready(rows: list[dict[str, Any]], dedup: bool, cap: int | None) -> list[dict[str, Any]]:
    """SFT rows with duplicates of a task's answer text dropped (whitespace-insensitive) and at most `cap` per task,
    the higher-scoring first (stable: the store's order among equals)."""
    kept: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    count: dict[str, int] = {}
    for row in sorted(rows, key=lambda r: -(r.get("score") or 0.0)):
        task = row["task_id"]
        key = (task, " ".join(str(row["messages"][-1].get("content", "")).split()))
        if (dedup and key in seen) or (cap is not None and count.get(task, 0) >= cap):
            continue
        seen.add(key)
        count[task] = count.get(task, 0) + 1
        kept.append(row)
    order = {id(r): i for i, r in enumerate(rows)}
    return sorted(kept, key=lambda r: order[id(r)])


def _prompt_rows(run_dir: Path) -> list[dict[str, Any]]:
    """TRL GRPOTrainer's prompt dataset: each task that has training candidates (never a held-out one), with its
    prompt as messages and its reference as `answer`."""
    with RunReader(run_dir) as reader:
        tasks = reader.task_bodies()
        trained = {c.task_id for c, _ in reader.iter_candidates_with_verdicts() if c.workflow != EVAL_WORKFLOW}
    rows = []
    for task_id, task in tasks.items():
        if task_id not in trained or task.get("answer") is None:
            continue
        prompt = task["prompt"]
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        rows.append({"prompt": messages, "answer": str(task["answer"]), "task_id": task_id})
    if not rows:
        raise UserError(f"{run_dir}: no training task with a reference answer to export as GRPO prompts")
    return rows


def _prm_rows(run_dir: Path, min_score: float | None) -> list[dict[str, Any]]:
    source = run_dir / "prm.jsonl"
    if not source.is_file():
        raise UserError(f"{run_dir}: no step labels (prm.jsonl); label the candidates first with "
                        f"`selfplay prm-label` (candidates = \"{run_dir / 'candidates.jsonl'}\"), then export its "
                        "directory with --format prm")
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    if min_score is not None:  # a PRM row's score: the share of its steps labelled correct
        rows = [r for r in rows if r["labels"] and sum(map(bool, r["labels"])) / len(r["labels"]) >= min_score]
    return rows
