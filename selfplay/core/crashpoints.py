"""Named crash points for resume tests: `SELFPLAY_CRASH_AT=name` makes the process SIGKILL itself there.

What it is for: proving "kill -9 anywhere, run the same command, nothing lost, nothing paid twice"
at exact places (after a chunk of samples is stored, after training but before the checkpoint is
saved, mid-evaluation) instead of at the mercy of timing. Unset, it costs one dict lookup.
What it does not do: anything in normal runs.
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "SELFPLAY_CRASH_AT"
SIGNAL_ENV = "SELFPLAY_CRASH_SIGNAL"   # "INT": a Ctrl-C at the crash point instead of kill -9 (Ctrl-C tests)


def crash_point(name: str) -> None:
    if os.environ.get(ENV) != name:
        return
    if os.environ.get(SIGNAL_ENV) != "INT":
        os.kill(os.getpid(), signal.SIGKILL)
    elif threading.current_thread() is threading.main_thread():
        raise KeyboardInterrupt  # a Ctrl-C exactly here (a signal would land at whichever await comes next)
    else:
        os.kill(os.getpid(), signal.SIGINT)
