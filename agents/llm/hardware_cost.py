"""Pricing in-process generation by hardware time, in the same USD as API calls.

What it is for: the `local` and `vllm` backends bill `hourly_usd x measured seconds`. One batched engine call
serves several requests at once; its wall time is split across them in proportion to their tokens (prompt +
completion), so the shares add up to exactly the batch's cost. Before a request runs, `worst_case_usd` gives the
budget ledger an upper bound: its token upper bound (prompt bound + max_tokens x n) times the slowest
seconds-per-token seen so far (times a safety factor), and never faster than `floor_tokens_per_second`.
What it does not do: measure anything itself (the backends time their batches), or know GPU prices (configure
`hourly_usd`: 0 means "free", e.g. a laptop CPU).

The bound holds as long as no batch runs slower per token than `safety` x the slowest one before it and
`floor_tokens_per_second` is at most the slowest throughput the hardware will show (set it low for big models
on a CPU: the default, 5 tokens/s, fits a 7B model on a laptop CPU, and is far below any GPU).
"""

from __future__ import annotations

import threading

SECONDS_PER_HOUR = 3600.0


class HardwareMeter:
    """Hourly price x measured time; thread-safe."""

    def __init__(self, hourly_usd: float = 0.0, *, floor_tokens_per_second: float = 5.0,
                 safety: float = 2.0) -> None:
        if hourly_usd < 0 or floor_tokens_per_second <= 0 or safety < 1:
            raise ValueError("hourly_usd >= 0, floor_tokens_per_second > 0 and safety >= 1 are required")
        self.hourly_usd = hourly_usd
        self.floor_tokens_per_second = floor_tokens_per_second
        self.safety = safety
        self.slowest_seconds_per_token = 0.0
        self.total_seconds = 0.0
        self.total_tokens = 0
        self._lock = threading.Lock()

    def observe(self, seconds: float, tokens: int) -> None:
        """Record one batch: its wall seconds and the tokens it processed (prompt + completion)."""
        with self._lock:
            self.total_seconds += seconds
            self.total_tokens += tokens
            if tokens > 0:
                self.slowest_seconds_per_token = max(self.slowest_seconds_per_token, seconds / tokens)

    def share_usd(self, batch_seconds: float, tokens: int, batch_tokens: int) -> float:
        """This request's part of a batch's cost: its share of the batch's tokens."""
        if self.hourly_usd == 0 or batch_tokens <= 0:
            return 0.0
        return self.hourly_usd / SECONDS_PER_HOUR * batch_seconds * tokens / batch_tokens

    def worst_case_usd(self, tokens_upper_bound: int) -> float:
        """A safe upper bound on the cost of a request of at most `tokens_upper_bound` tokens (see module doc)."""
        if self.hourly_usd == 0:
            return 0.0
        with self._lock:
            seconds_per_token = max(1.0 / self.floor_tokens_per_second,
                                    self.safety * self.slowest_seconds_per_token)
        return self.hourly_usd / SECONDS_PER_HOUR * seconds_per_token * tokens_upper_bound

    @property
    def tokens_per_second(self) -> float | None:
        """Measured throughput so far (tokens of all requests over batch wall time)."""
        return self.total_tokens / self.total_seconds if self.total_seconds > 0 else None
