"""Adaptive K: how many more samples to draw for one task now, from what its samples did so far.

What it is for: spending the sampling budget where it buys verified answers. The generate loop calls
`next_batch(sampled, passed, settings)` per task after each batch is verified; 0 means the task is done.
The rule, in order:
1. `stop_after_verified = M` set and `passed >= M`: 0 (enough verified candidates).
2. The cap is `k_max` (or `k` when `k_max` is unset: fixed K). Nothing left under the cap: 0.
3. Fewer than `k` sampled: the rest of the first `k` (one `n=K` request where the server allows).
4. After the first `k`, with the pass rate `p = passed / sampled`:
   - `p == 0`: 0. No sample has passed, so nothing says more samples would (spend them elsewhere);
   - with M set: `min(batch, left, ceil((M - passed) / p))`: the samples expected to reach M, so a
     task with a low but non-zero rate gets a full batch and an almost-done one only what it needs;
   - without M: a full `batch` (capped by what is left) while `p < low_pass_rate`: the hard-but-solvable
     tasks, the most informative for training, get more; easier ones stop at `k`.
`batch` defaults to `k`. Deterministic: the same counts always give the same answer, so a resumed loop
asks for the same batches (and replays them from the cache).
What it does NOT do: sample or verify, or share one budget across tasks (the ledger caps the total).
"""

from __future__ import annotations

import math
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AdaptiveK(BaseModel):
    """Settings of `[generate]`: `k`, `k_max`, `stop_after_verified`, `batch`, `low_pass_rate`."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(default=8, ge=1)
    k_max: int | None = Field(default=None, ge=1)
    stop_after_verified: int | None = Field(default=None, ge=1)
    batch: int | None = Field(default=None, ge=1)
    low_pass_rate: float = Field(default=0.5, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _k_max_not_below_k(self) -> "AdaptiveK":
        if self.k_max is not None and self.k_max < self.k:
            raise ValueError(f"k_max ({self.k_max}) must be at least k ({self.k})")
        return self

    @property
    def cap(self) -> int:
        return self.k_max if self.k_max is not None else self.k

    @property
    def batch_size(self) -> int:
        return self.batch or self.k


def next_batch(sampled: int, passed: int, settings: AdaptiveK) -> int:
    """How many more samples to draw for this task now; 0 means it is done (see the module rule)."""
    if sampled < 0 or passed < 0 or passed > sampled:
        raise ValueError(f"bad counts: sampled={sampled}, passed={passed}")
    wanted = settings.stop_after_verified
    if wanted is not None and passed >= wanted:
        return 0
    left = settings.cap - sampled
    if left <= 0:
        return 0
    if sampled < settings.k:
        return min(settings.k - sampled, left)
    if passed == 0:
        return 0
    rate = passed / sampled
    if wanted is not None:
        return min(settings.batch_size, left, math.ceil((wanted - passed) / rate))
    return min(settings.batch_size, left) if rate < settings.low_pass_rate else 0


def samples_per_solved(counts: Iterable[tuple[int, int]]) -> float | None:
    """Samples spent per solved task (a task is solved when at least one sample passed); None if none was."""
    total = solved = 0
    for sampled, passed in counts:
        total += sampled
        solved += passed > 0
    return total / solved if solved else None
