"""Progress line (loss, tokens/s, ETA) on stderr and a JSONL metrics log in the output directory.

What it is for: the user sees where a run is; every logged step is kept as one JSON line (`metrics.jsonl`).
A caller that shows its own display (selfplay's live progress) registers a listener with `listening(fn)`: every
logged record (step, total_steps, loss, tokens_per_s, eta_s, ...) is passed to it, in the process that trains.
What it does not do: plotting or experiment tracking services; it never slows a step (no device syncs of its own).
"""

from __future__ import annotations

import json
import os
import sys
import time


_LISTENERS: list = []


class listening:
    """`with listening(fn):` every Progress.log record is also passed to `fn(record)` (a display's hook)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __enter__(self) -> "listening":
        _LISTENERS.append(self.fn)
        return self

    def __exit__(self, *exc: object) -> None:
        _LISTENERS.remove(self.fn)


def _fmt_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    def __init__(self, name: str, total_steps: int, mode: str = "auto", log_path: str | None = None,
                 enabled: bool = True, start_step: int = 0):
        self.name, self.total, self.enabled = name, total_steps, enabled
        self.live = enabled and (mode == "on" or (mode == "auto" and sys.stderr.isatty()))
        self.log_path = log_path if enabled else None
        self.start_time, self.start_step = time.perf_counter(), start_step
        self.tokens = 0
        if self.log_path:
            os.makedirs(os.path.dirname(self.log_path) or ".", exist_ok=True)

    def add_tokens(self, n: int) -> None:
        self.tokens += n

    def rates(self, step: int) -> dict:
        elapsed = max(1e-9, time.perf_counter() - self.start_time)
        done = step - self.start_step
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        return {"tokens_per_s": self.tokens / elapsed, "elapsed_s": elapsed, "eta_s": eta}

    def log(self, step: int, metrics: dict) -> dict:
        record = {"step": step, "total_steps": self.total, **metrics, **self.rates(step)}
        if self.log_path:
            with open(self.log_path, "a") as fh:
                fh.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")
        for listener in list(_LISTENERS) if self.enabled else ():  # the main process only
            listener(record)
        if self.live:
            loss, eta = record.get("loss", float("nan")), record["eta_s"]
            eta_text = _fmt_duration(eta) if eta == eta else "?"  # NaN before the first step completes
            sys.stderr.write(f"\r{self.name} step {step}/{self.total}  loss {loss:.4f}  "
                             f"{record['tokens_per_s']:,.0f} tok/s  eta {eta_text} ")
            sys.stderr.flush()
        return record

    def close(self) -> None:
        if self.live:
            sys.stderr.write("\n")


def _plain(value):
    if isinstance(value, float) and value != value:
        return None
    return value
