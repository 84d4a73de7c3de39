"""The budget ledger: reserve a request's worst case before it is sent, settle to real usage after.

What it is for: caps in USD, tokens and wall-clock time that are never exceeded, however many
requests are in flight: a request whose worst case does not fit under every cap is refused
(`BudgetExceeded`) and never sent. Totals can persist through a `LedgerBackend` (selfplay's run
store), so a resumed job continues the same ledger. A reservation left unsettled by a killed
process (its reply may or may not have been billed) is counted as spent at its worst case: caps
stay safe, and the report shows that sum apart (`orphaned_usd`).
What it does not do: know prices (callers pass USD), or stop a request already in flight when the
wall-clock cap passes (in-flight requests end by their own timeout).
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Protocol

from pydantic import BaseModel, Field

from agents.llm.types import BudgetExceeded


class Caps(BaseModel):
    """Budget caps; None means no cap on that axis."""

    usd: float | None = Field(default=None, ge=0.0)
    tokens: int | None = Field(default=None, ge=0)
    minutes: float | None = Field(default=None, ge=0.0)


class Totals(BaseModel):
    """Money and tokens so far. `orphaned_*` are worst cases of reservations never settled."""

    spent_usd: float = 0.0
    spent_tokens: int = 0
    orphaned_usd: float = 0.0
    orphaned_tokens: int = 0
    requests: int = 0
    elapsed_s: float = 0.0  # wall time of earlier sessions of the same job


class Reservation(BaseModel):
    id: str
    key: str = ""
    usd: float
    tokens: int


class LedgerBackend(Protocol):
    """Durable storage of the ledger (implemented by selfplay's run store).

    A backend may also offer `async durable()`: return once every record made so far is on disk
    (`areserve` awaits it, so a backend can share one commit among many reservations).
    """

    def load_totals(self) -> Totals: ...
    def record_reservation(self, reservation: Reservation) -> None: ...
    def record_settlement(self, reservation: Reservation, usd: float, tokens: int,
                          payload: dict[str, Any] | None) -> None: ...
    def record_elapsed(self, elapsed_s: float) -> None: ...


class BudgetLedger:
    """Thread-safe reserve/settle accounting against `Caps`."""

    def __init__(self, caps: Caps | None = None, backend: LedgerBackend | None = None) -> None:
        self.caps = caps or Caps()
        self._backend = backend
        self._totals = backend.load_totals() if backend else Totals()
        self._reserved_usd = 0.0
        self._reserved_tokens = 0
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._session = f"{time.time_ns():x}"
        self._started = time.monotonic()
        self.refusal: BudgetExceeded | None = None  # the first refusal of this session, if any

    # --- reading -----------------------------------------------------------------
    @property
    def totals(self) -> Totals:
        with self._lock:
            return self._totals.model_copy(update={"elapsed_s": self.elapsed_s})

    @property
    def elapsed_s(self) -> float:
        return self._totals.elapsed_s + (time.monotonic() - self._started)

    @property
    def in_flight_usd(self) -> float:
        return self._reserved_usd

    def committed_usd(self) -> float:
        """Spent + orphaned + reserved: the figure the USD cap is checked against."""
        return self._totals.spent_usd + self._totals.orphaned_usd + self._reserved_usd

    def committed_tokens(self) -> int:
        return self._totals.spent_tokens + self._totals.orphaned_tokens + self._reserved_tokens

    # --- writing -----------------------------------------------------------------
    def reserve(self, usd: float, tokens: int, key: str = "") -> Reservation:
        """Hold the worst case of one request, or raise BudgetExceeded (the request must not be sent)."""
        with self._lock:
            self._check_fits(usd, tokens)
            reservation = Reservation(id=f"{self._session}-{next(self._ids)}", key=key, usd=usd, tokens=tokens)
            self._reserved_usd += usd
            self._reserved_tokens += tokens
        if self._backend:
            self._backend.record_reservation(reservation)
        return reservation

    async def areserve(self, usd: float, tokens: int, key: str = "") -> Reservation:
        """`reserve`, then wait until the backend has the reservation on record (a backend with a
        `durable()` coroutine may group the writes of many reservations into one): send after this."""
        reservation = self.reserve(usd, tokens, key=key)
        durable = getattr(self._backend, "durable", None)
        if durable is not None:
            await durable()
        return reservation

    def settle(self, reservation: Reservation, usd: float, tokens: int,
               payload: dict[str, Any] | None = None) -> None:
        """Replace the reservation by the real cost (0 for a request that failed before billing)."""
        with self._lock:
            self._reserved_usd -= reservation.usd
            self._reserved_tokens -= reservation.tokens
            self._totals.spent_usd += usd
            self._totals.spent_tokens += tokens
            self._totals.requests += 1
        if self._backend:
            self._backend.record_settlement(reservation, usd, tokens, payload)

    def checkpoint_time(self) -> None:
        """Persist the wall time of this session (call at the end of a job, or periodically)."""
        if self._backend:
            self._backend.record_elapsed(self.elapsed_s)

    def check_open(self) -> None:
        """Raise BudgetExceeded if any cap is already reached (before starting new work)."""
        with self._lock:
            self._check_fits(0.0, 0)

    def _check_fits(self, usd: float, tokens: int) -> None:
        try:
            self._check_caps(usd, tokens)
        except BudgetExceeded as exc:
            self.refusal = self.refusal or exc
            raise

    def _check_caps(self, usd: float, tokens: int) -> None:
        caps = self.caps
        if caps.minutes is not None and self.elapsed_s >= caps.minutes * 60:
            raise BudgetExceeded(f"wall-clock cap of {caps.minutes} min reached", cap="minutes")
        if caps.usd is not None and self.committed_usd() + usd > caps.usd + 1e-12:
            raise BudgetExceeded(
                f"USD cap ${caps.usd:.4f}: spent ${self._totals.spent_usd:.4f}, in flight ${self._reserved_usd:.4f}, "
                f"orphaned ${self._totals.orphaned_usd:.4f}; next request's worst case ${usd:.6f} does not fit", cap="usd")
        if caps.tokens is not None and self.committed_tokens() + tokens > caps.tokens:
            raise BudgetExceeded(
                f"token cap {caps.tokens}: committed {self.committed_tokens()}, next request's worst case "
                f"{tokens} tokens does not fit", cap="tokens")
