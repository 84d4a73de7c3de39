"""Deterministic fault injection that lets retries through.

What it is for: deciding, for each completion request, whether the server answers normally or with one
of the faults: "429" (rate limit, Retry-After), "500" (500, 502 or 503), "timeout" (hold the request open),
"malformed" (HTTP 200 whose body is not a valid completion), "truncate" (connection dropped mid-body).

How determinism works: the server counts attempts per request key (SHA-256 of the endpoint and the full
canonical JSON body, so "the same request" means byte-for-byte the same parameters). Attempt a of key k
draws u = stable_hash(seed, k, a) / 2**64 in [0, 1) and compares it with the cumulative rates, in the
order of FAULT_KINDS: u < r429 -> 429, u < r429 + r500 -> 500, and so on; above the sum -> no fault.
So the decision depends on (seed, request content, attempt number of that request), never on arrival
order across different requests. Retrying draws a fresh u, and after `max_consecutive` faults in a row
for the same key the next attempt is always served, so any rate < 1 (or even rates summing to 1) never
fails a request forever: with the default cap of 3, attempt 4 at the latest gets through.
Identical requests in flight at the same time share one attempt counter (who gets which attempt number
is then arrival order, but the multiset of outcomes and every successful reply are the same).
What it does NOT do: build HTTP responses (see `app`) or sleep.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from selfplay.servers.mock.matching import stable_hash

FAULT_KINDS = ("429", "500", "timeout", "malformed", "truncate")
STATUS_5XX = (500, 502, 503)
MALFORMED_VARIANTS = ("invalid_json", "missing_choices")


@dataclass(frozen=True)
class Fault:
    kind: str
    variant: str | int | None = None  # the 5xx status, or the malformed-body variant


@dataclass
class FaultRates:
    rates: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.rates) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kind(s) {sorted(unknown)}; known: {list(FAULT_KINDS)}")
        for kind, rate in self.rates.items():
            if not 0.0 <= float(rate) <= 1.0:
                raise ValueError(f"fault rate for {kind} must be within [0, 1], got {rate}")
        if sum(self.rates.values()) > 1.0 + 1e-9:
            raise ValueError(f"fault rates sum to {sum(self.rates.values()):.3f}; they must sum to at most 1")

    @property
    def total(self) -> float:
        return sum(self.rates.values())


class FaultPlanner:
    """Counts attempts per request key and decides each attempt's fault (or None)."""

    def __init__(self, rates: FaultRates, seed: int = 0, max_consecutive: int = 3):
        self.rates = rates
        self.seed = seed
        self.max_consecutive = max_consecutive
        self._attempts: dict[str, int] = defaultdict(int)
        self._consecutive: dict[str, int] = defaultdict(int)

    def reset(self) -> None:
        self._attempts.clear()
        self._consecutive.clear()

    def decide(self, key: str) -> Fault | None:
        attempt = self._attempts[key]
        self._attempts[key] = attempt + 1
        if self.rates.total <= 0:
            return None
        fault = None
        if self._consecutive[key] < self.max_consecutive:
            fault = self._draw(key, attempt)
        self._consecutive[key] = self._consecutive[key] + 1 if fault else 0
        return fault

    def _draw(self, key: str, attempt: int) -> Fault | None:
        u = stable_hash(self.seed, "fault", key, attempt) / 2.0**64
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += self.rates.rates.get(kind, 0.0)
            if u < edge:
                return Fault(kind, self._variant(kind, key, attempt))
        return None

    def _variant(self, kind: str, key: str, attempt: int):
        pick = stable_hash(self.seed, "variant", key, attempt)
        if kind == "500":
            return STATUS_5XX[pick % len(STATUS_5XX)]
        if kind == "malformed":
            return MALFORMED_VARIANTS[pick % len(MALFORMED_VARIANTS)]
        return None
