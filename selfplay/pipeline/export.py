"""Run directories as TRL / HF `datasets` files: candidates with their verdicts, each round's training rows, exports.

What it is for:
- `candidates_with_verdicts(store)`: every stored candidate with an `id` (`r{round}/{workflow}/{task}/{sample}`)
  and its verdicts (`verdict`: the one of the job's verifier when there is one, `verdicts`: all, by verifier), so
  `candidates.jsonl` says which candidate passed without SQL;
- `write_round_rows(run_dir, round, rows)`: `rounds/R/train.jsonl`, the rows round R trained on, each with the
  `candidate_ids` it came from;
- `export_run(run_dir, fmt, out, min_score)`: `selfplay export` — SFT / DPO / GRPO / PRM rows from a `generate` or
  `run` directory, as JSONL or Parquet (by the suffix of `out`). Held-out evaluation samples (workflow `eval`) are
  never exported: training on them would contaminate the evaluation.
What it does not do: decide what a round trains on (`selfplay.jobs.phases`), or label PRM steps (`selfplay prm-label`
does; `--format prm` exports its `prm.jsonl`).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from selfplay.core.errors import UserError
from selfplay.core.files import write_jsonl, write_parquet

EVAL_WORKFLOW = "eval"
FORMATS = ("sft", "dpo", "grpo", "prm")


def candidate_id(record: dict[str, Any], round_: int | None = None) -> str:
    rnd = record.get("round", round_ if round_ is not None else 0)
    return f"r{rnd}/{record['workflow']}/{record['task_id']}/{record['sample_index']}"


def _connect(run_dir: Path) -> sqlite3.Connection:
    db = run_dir / "run.db"
    if not db.is_file():
        raise UserError(f"{run_dir}: no run store (run.db); pass a directory written by `selfplay generate` "
                        "or `selfplay run`")
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True)  # read-only: safe beside a running job


def iter_candidates_with_verdicts(conn: sqlite3.Connection, round_: int | None = None,
                                  verifier: str | None = None) -> Iterator[dict[str, Any]]:
    """Candidates in task order (as `RunStore.iter_candidates`), each with `id`, `verdict` and `verdicts`."""
    where = "WHERE c.round = ? " if round_ is not None else ""
    sql = ("SELECT c.round, c.task_id, c.workflow, c.sample_index, c.body FROM candidates c "
           "LEFT JOIN tasks t ON t.id = c.task_id " + where
           + "ORDER BY c.round, t.position, c.task_id, c.workflow, c.sample_index")
    verdicts: dict[tuple, dict[str, dict[str, Any]]] = {}
    vsql = "SELECT round, task_id, workflow, sample_index, verifier, body FROM verdicts" + (
        " WHERE round = ?" if round_ is not None else "")
    for rnd, tid, wf, idx, name, body in conn.execute(vsql, (round_,) if round_ is not None else ()):
        verdicts.setdefault((rnd, tid, wf, idx), {})[name] = json.loads(body)
    for rnd, tid, wf, idx, body in conn.execute(sql, (round_,) if round_ is not None else ()):
        record = json.loads(body)
        record.setdefault("round", rnd)
        found = verdicts.get((rnd, tid, wf, idx), {})
        record["id"] = candidate_id(record, rnd)
        record["verdicts"] = found
        chosen = found.get(verifier) if verifier else None
        if chosen is None and len(found) == 1:
            chosen = next(iter(found.values()))
        record["verdict"] = _brief_verdict(chosen)
        yield record


def _brief_verdict(verdict: dict[str, Any] | None) -> dict[str, Any] | None:
    if verdict is None:
        return None
    return {"passed": bool(verdict.get("passed")) and not verdict.get("error"), "score": float(verdict.get("score", 0.0)),
            "error": verdict.get("error"), "reason": verdict.get("reason")}


def write_candidates(run_dir: str | Path, path: str | Path | None = None, *, round_: int | None = None,
                     verifier: str | None = None) -> int:
    """`candidates.jsonl` of a run directory, each candidate with its verdicts; returns the count written."""
    run_dir = Path(run_dir)
    with _connect(run_dir) as conn:
        return write_jsonl(iter_candidates_with_verdicts(conn, round_, verifier), path or run_dir / "candidates.jsonl")


def write_round_rows(run_dir: str | Path, round_: int, rows: list[dict[str, Any]],
                     candidate_ids: list[list[str]] | None = None) -> Path:
    """`rounds/R/train.jsonl`: the rows round R trains on (seed rows have `candidate_ids` = [])."""
    out = Path(run_dir) / "rounds" / str(round_)
    out.mkdir(parents=True, exist_ok=True)
    ids = candidate_ids or [row.get("candidate_ids", []) for row in rows]
    path = out / "train.jsonl"
    write_jsonl(({**row, "candidate_ids": list(i)} for row, i in zip(rows, ids)), path)
    return path


def export_run(run_dir: str | Path, fmt: str, out: str | Path, *, min_score: float | None = None,
               max_pairs: int = 4) -> dict[str, Any]:
    """Write `out` (.jsonl or .parquet) in `fmt`; returns {"rows", "path", "format"}."""
    run_dir, out = Path(run_dir), Path(out)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if out.suffix not in (".jsonl", ".parquet"):
        raise UserError(f"--out {out}: the file name must end in .jsonl or .parquet")
    if fmt == "prm":
        rows = _prm_rows(run_dir, min_score)
    else:
        with _connect(run_dir) as conn:
            groups = _groups(conn, min_score)
        rows = _rows(groups, fmt, max_pairs)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        if not rows:
            raise UserError(f"{run_dir}: no {fmt} rows to export (a Parquet file needs at least one row)")
        write_parquet(rows, out)
    else:
        write_jsonl(rows, out)
    return {"rows": len(rows), "path": str(out), "format": fmt}


def _groups(conn: sqlite3.Connection, min_score: float | None) -> dict[tuple, list[dict[str, Any]]]:
    """Judged, error-free training candidates by (round, workflow, task); `passed` also needs score >= min_score."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in iter_candidates_with_verdicts(conn):
        verdict = record["verdict"]
        if record["workflow"] == EVAL_WORKFLOW or record.get("error") is not None or verdict is None \
                or verdict["error"]:
            continue
        record["_passed"] = verdict["passed"] and (min_score is None or verdict["score"] >= min_score)
        groups.setdefault((record["round"], record["workflow"], record["task_id"]), []).append(record)
    return groups


def _split(record: dict[str, Any]) -> tuple[list, list]:
    split = record.get("prompt_messages", 1)
    return list(record["messages"][:split]), list(record["messages"][split:])


def _rows(groups: dict[tuple, list[dict[str, Any]]], fmt: str, max_pairs: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for (_, _, task_id), group in groups.items():
        passed = [r for r in group if r["_passed"]]
        if fmt == "sft":
            for r in passed:
                prompt, completion = _split(r)
                rows.append({"messages": prompt + completion, "task_id": task_id, "score": r["verdict"]["score"],
                             "candidate_ids": [r["id"]]})
        elif fmt == "dpo":
            failed, seen = [], set()
            for r in group:
                key = " ".join(str(r.get("final_answer", "")).split()).lower()
                if not r["_passed"] and key not in seen:
                    seen.add(key)
                    failed.append(r)
            for i, rejected in enumerate(failed[:max_pairs] if passed else []):
                chosen = passed[i % len(passed)]
                prompt, good = _split(chosen)
                rows.append({"prompt": prompt, "chosen": good, "rejected": _split(rejected)[1], "task_id": task_id,
                             "candidate_ids": [chosen["id"], rejected["id"]]})
        else:  # grpo: groups with a learning signal (rewards not all equal)
            rewards = [r["verdict"]["score"] for r in group]
            if len(group) < 2 or max(rewards) == min(rewards):
                continue
            rows.append({"prompt": _split(group[0])[0], "completions": [str(r.get("final_answer", "")) for r in group],
                         "rewards": rewards, "task_id": task_id, "candidate_ids": [r["id"] for r in group]})
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


def round_candidate_ids(rows: list[dict[str, Any]], items: list[Any], round_: int, workflow: str) -> list[list[str]]:
    """The candidate ids each training row came from (`items`: the round's `Scored` candidates), found by content:
    SFT rows by their messages, preference rows by chosen and rejected, RL groups by their completions; rows made
    of no candidate (replayed seed rows) get []."""
    by_messages: dict[str, str] = {}
    by_text: dict[tuple[str, str], str] = {}
    for c in items:
        cid = f"r{round_}/{workflow}/{c.task_id}/{c.sample_index}"
        by_messages.setdefault(_key([*c.prompt, *c.completion]), cid)
        by_text.setdefault((_key(list(c.prompt)), c.text), cid)
    out = []
    for row in rows:
        if "messages" in row:
            ids = [by_messages.get(_key(row["messages"]))]
        elif "chosen" in row:
            ids = [by_messages.get(_key([*row["prompt"], *row[k]])) for k in ("chosen", "rejected")]
        elif "completions" in row:
            ids = [by_text.get((_key(row["prompt"]), text)) for text in row["completions"]]
        else:
            ids = []
        out.append([i for i in ids if i is not None])
    return out


def _key(messages: Any) -> str:
    return json.dumps(messages, sort_keys=True, ensure_ascii=False)
