"""Helpers for `selfplay generate` end-to-end tests: write a config and tasks, run the CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
[model]
name = "mock-model"
base_url = "{base_url}"
timeout_s = {timeout_s}
max_attempts = 8

[prices."mock-model"]
input = 1.0
output = 2.0

[generate]
tasks = "tasks.jsonl"
k = {k}
max_tokens = 64
concurrency = {concurrency}
seed = 11

[budget]
{budget}
"""


def write_job(tmp: Path, base_url: str, *, tasks: int = 30, k: int = 4, concurrency: int = 16,
              budget: str = "usd = 10.0", timeout_s: float = 1.0) -> Path:
    with (tmp / "tasks.jsonl").open("w") as handle:
        for i in range(tasks):
            handle.write(json.dumps({"id": f"t{i}", "prompt": f"What is {i} + {2 * i}?", "answer": str(3 * i)}) + "\n")
    config = tmp / "gen.toml"
    config.write_text(CONFIG.format(base_url=base_url, k=k, concurrency=concurrency, budget=budget,
                                    timeout_s=timeout_s))
    return config


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "selfplay", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "selfplay", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def read_summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def read_candidates(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]


def stored_candidates(out: Path) -> int:
    """Candidates in a run store, read beside a running job (0 before the store exists)."""
    try:
        with sqlite3.connect(out / "run.db", timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM candidates").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def kill_generate_mid_job(config: Path, out: Path, at_least: int, total: int) -> None:
    """Start `selfplay generate`, SIGKILL it once `at_least` candidates are stored, check it died mid-job."""
    process = popen("generate", "--config", str(config), "--out", str(out), "--no-progress")
    deadline = time.monotonic() + 60
    while stored_candidates(out) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert 0 < stored_candidates(out) < total, "the kill must land mid-job"
