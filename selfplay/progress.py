"""The live progress display of jobs (rich): tasks, candidates, verified candidates, $ per verified
candidate, tokens, $ of the cap, requests/s, ETA.

What it is for: telling a person watching a long job where it stands. It writes to stderr so
stdout stays clean for scripts, and refreshes a few times a second at most. On a terminal narrower
than `NARROW` columns the bar, token count and ETA are left out so the line does not wrap.
`PhaseProgress.training` shows a training phase's step / steps, loss, tokens/s and ETA from the trainer's records.
What it does not do: compute any figure (the job passes them in) or log to files.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


NARROW = 100  # columns below which the display drops the bar, tokens and ETA


class JobProgress:
    """A one-line live display; a no-op-cheap `update` that callers may call on every event."""

    def __init__(self, description: str, total: int, *, usd_cap: float | None = None, enabled: bool = True,
                 console: Console | None = None) -> None:
        self._console = console or Console(stderr=True)
        self.enabled = enabled
        self._usd_cap = usd_cap
        self._started = time.monotonic()
        self._last = 0.0
        self.narrow = self._console.width < NARROW
        columns = ([TextColumn("[bold]{task.description}"), MofNCompleteColumn(), TextColumn("{task.fields[stats]}")]
                   if self.narrow else
                   [TextColumn("[bold]{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                    TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()])
        self._progress = Progress(*columns, console=self._console, disable=not enabled, refresh_per_second=4)
        self._task = self._progress.add_task(description, total=total, stats="")

    def __enter__(self) -> "JobProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def due(self, force: bool = False) -> bool:
        """Whether an `update` now would show anything (callers can skip gathering the figures)."""
        return self.enabled and (force or time.monotonic() - self._last >= 0.25)

    def update(self, *, done: int, candidates: int, tokens: int, usd: float, requests: int,
               verified: int | None = None, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.25:
            return
        self._last = now
        rate = requests / max(now - self._started, 1e-9)
        self._progress.update(self._task, completed=done, stats=self.stats_text(candidates, tokens, usd, rate, verified))

    def stats_text(self, candidates: int, tokens: int, usd: float, rate: float, verified: int | None) -> str:
        """The figures after the task count: shorter labels and no tokens on a narrow terminal."""
        cap = f"/{self._usd_cap:.2f}" if self._usd_cap is not None else ""
        parts = [f"cand {candidates}"]
        if verified is not None:
            per = f"${usd / verified:.4g}/ver" if verified else "$-/ver"
            parts += [f"ver {verified}", per]
        if not self.narrow:
            parts.append(f"tok {tokens:,}")
        parts += [f"${usd:.4f}{cap}", f"{rate:.1f} r/s"]
        return "  ".join(parts) if not self.narrow else " ".join(parts)


def training_text(record: dict) -> str:
    """"step 40/300  loss 1.234  812 tok/s  ETA 0:01:05" from a trainer log record (missing figures left out)."""
    parts = [f"step {record.get('step', 0)}/{record.get('total_steps') or '?'}"]
    if isinstance(record.get("loss"), (int, float)):
        parts.append(f"loss {record['loss']:.3f}")
    if isinstance(record.get("tokens_per_s"), (int, float)):
        parts.append(f"{record['tokens_per_s']:,.0f} tok/s")
    eta = record.get("eta_s")
    if isinstance(eta, (int, float)) and eta == eta:
        seconds = int(max(0, eta))
        parts.append(f"ETA {seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}")
    return "  ".join(parts)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


class PhaseProgress:
    """A live display for long multi-phase jobs (the loop, the demo): one bar whose phase text changes."""

    def __init__(self, enabled: bool = True) -> None:
        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TimeElapsedColumn(), console=Console(stderr=True), disable=not enabled,
                                  refresh_per_second=4)
        self._task = self._progress.add_task("starting", total=1)
        self.console = self._progress.console

    def __enter__(self) -> "PhaseProgress":
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def phase(self, description: str, total: int) -> None:
        self._phase = description
        self._progress.reset(self._task, total=max(1, total), description=description)

    def training(self, record: dict) -> None:
        """A trainer log record (trainer.progress.listening): the bar counts optimizer steps, the text shows them
        with the loss, tokens/s and the ETA, so a long training phase shows that it moves."""
        step, total = record.get("step", 0), max(1, record.get("total_steps") or 1)
        self._progress.update(self._task, total=total, completed=step,
                              description=f"{getattr(self, '_phase', 'train')}  {training_text(record)}")

    def advance(self, amount: int = 1) -> None:
        self._progress.advance(self._task, amount)

    def print(self, text: str) -> None:
        self._progress.console.print(text)
