"""The budget ledger: reserve a request's worst case before it is sent, settle to real usage after.

What it is for: caps in USD, tokens and wall-clock time that are never exceeded, however many
requests are in flight, and that are spent to the end. `areserve` (what every metered request
uses) holds a request's worst case if it fits; if it does not fit only because other requests are
in flight holding theirs, it waits (in arrival order, so a large request cannot starve behind small
ones) for their settlements and tries again. The ledger closes, and refuses every request from then
on with `BudgetExceeded` (never sent), when nothing is in flight and the next request still does not
fit, or the wall-clock cap is reached. The closing refusal says spent, committed and what the next
request needed; a backend with `set_meta`/`get_meta` (selfplay's run store) keeps it, so a re-run
with the same caps buys nothing new (raising the cap reopens the ledger). Totals persist through a
`LedgerBackend`, so a resumed job continues the same ledger. A reservation left unsettled by a
killed process (its reply may or may not have been billed) counts as spent at its worst case: caps
stay safe, and the report shows that sum apart (`orphaned_usd`).
What it does not do: know prices (callers pass USD), or stop a request already in flight when the
wall-clock cap passes (in-flight requests end by their own timeout). The synchronous `reserve`
never waits: it refuses what does not fit now.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
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


CLOSED_KEY = "ledger_closed"  # meta key of the closing refusal in a backend with get_meta / set_meta


class _Waiter:
    """One `areserve` call queued behind others or behind the requests in flight."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future = loop.create_future()

    def wake(self) -> None:
        def _set(future: asyncio.Future = self.future) -> None:
            if not future.done():
                future.set_result(None)
        try:
            self.loop.call_soon_threadsafe(_set)
        except RuntimeError:  # its loop is closed: nobody is waiting any more
            pass


class BudgetLedger:
    """Thread-safe reserve/settle accounting against `Caps`; `areserve` waits for settlements."""

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
        self._in_flight = 0  # reservations not yet settled
        self._queue: deque[_Waiter] = deque()
        self.waits = 0  # areserve calls that had to wait for settlements (this session)
        self.closed: BudgetExceeded | None = self._load_closed()

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

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def committed_usd(self) -> float:
        """Spent + orphaned + reserved: the figure the USD cap is checked against."""
        return self._totals.spent_usd + self._totals.orphaned_usd + self._reserved_usd

    def committed_tokens(self) -> int:
        return self._totals.spent_tokens + self._totals.orphaned_tokens + self._reserved_tokens

    # --- writing -----------------------------------------------------------------
    def reserve(self, usd: float, tokens: int, key: str = "") -> Reservation:
        """Hold the worst case of one request, or raise BudgetExceeded (the request must not be sent)."""
        with self._lock:
            if self.closed is not None:
                raise self._refused(self.closed)
            self._check_fits(usd, tokens)
            reservation = self._hold(usd, tokens, key)
        if self._backend:
            self._backend.record_reservation(reservation)
        return reservation

    async def areserve(self, usd: float, tokens: int, key: str = "") -> Reservation:
        """Hold the worst case of one request, waiting for settlements while it does not fit only
        because requests are in flight; raise BudgetExceeded once the ledger closes. Then wait until
        the backend has the reservation on record (a backend with a `durable()` coroutine may group
        the writes of many reservations into one): send after this."""
        reservation = await self._wait_for_room(usd, tokens, key)
        if self._backend:
            self._backend.record_reservation(reservation)
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
            self._in_flight -= 1
            self._totals.spent_usd += usd
            self._totals.spent_tokens += tokens
            self._totals.requests += 1
            self._wake_head()
        if self._backend:
            self._backend.record_settlement(reservation, usd, tokens, payload)

    def checkpoint_time(self) -> None:
        """Persist the wall time of this session (call at the end of a job, or periodically)."""
        if self._backend:
            self._backend.record_elapsed(self.elapsed_s)

    def check_open(self) -> None:
        """Raise BudgetExceeded if the ledger is closed or a cap is already reached (before starting new work)."""
        with self._lock:
            if self.closed is not None:
                raise self._refused(self.closed)
            self._check_fits(0.0, 0)

    # --- waiting -----------------------------------------------------------------
    async def _wait_for_room(self, usd: float, tokens: int, key: str) -> Reservation:
        waiter: _Waiter | None = None
        try:
            while True:
                with self._lock:
                    if waiter is None and not self._queue or waiter is not None and self._queue[0] is waiter:
                        reservation = self._try_hold(usd, tokens, key)
                        if reservation is not None:
                            if waiter is not None:
                                self._queue.popleft()
                                self._wake_head()  # the next in line may fit too
                            return reservation
                    if waiter is None:
                        waiter = _Waiter(asyncio.get_running_loop())
                        self._queue.append(waiter)
                        self.waits += 1
                    else:
                        waiter.future = waiter.loop.create_future()
                    future = waiter.future
                await future
        except BaseException:
            if waiter is not None:
                with self._lock:
                    if waiter in self._queue:
                        self._queue.remove(waiter)
                    self._wake_head()
            raise

    def _try_hold(self, usd: float, tokens: int, key: str) -> Reservation | None:
        """Under the lock: the reservation if it fits; None to wait for settlements; raise once closed."""
        if self.closed is not None:
            raise self._refused(self.closed)
        try:
            self._check_caps(usd, tokens)
        except BudgetExceeded as exc:
            if exc.cap != "minutes" and self._in_flight > 0:
                return None
            self._close(exc if exc.cap == "minutes" else self._closing(exc.cap, usd, tokens))
            raise self._refused(self.closed) from None
        return self._hold(usd, tokens, key)

    def _hold(self, usd: float, tokens: int, key: str) -> Reservation:
        reservation = Reservation(id=f"{self._session}-{next(self._ids)}", key=key, usd=usd, tokens=tokens)
        self._reserved_usd += usd
        self._reserved_tokens += tokens
        self._in_flight += 1
        return reservation

    def _wake_head(self) -> None:
        if self._queue:
            self._queue[0].wake()

    def _closing(self, cap: str, usd: float, tokens: int) -> BudgetExceeded:
        t = self._totals
        if cap == "usd":
            text = (f"USD cap ${self.caps.usd:.4f} reached: spent ${t.spent_usd:.4f}, committed "
                    f"${self.committed_usd():.4f} (orphaned ${t.orphaned_usd:.4f}), nothing in flight; the next "
                    f"request needs up to ${usd:.6f}, ${self.caps.usd - self.committed_usd():.6f} is left")
        else:
            text = (f"token cap {self.caps.tokens} reached: spent {t.spent_tokens} tokens, committed "
                    f"{self.committed_tokens()}, nothing in flight; the next request needs up to {tokens} tokens")
        return BudgetExceeded(text, cap=cap)

    def _close(self, exc: BudgetExceeded) -> None:
        """Under the lock: close the ledger (every later request is refused) and keep the refusal."""
        self.closed = exc
        self.refusal = self.refusal or exc
        for waiter in self._queue:
            waiter.wake()
        set_meta = getattr(self._backend, "set_meta", None)
        if set_meta is not None and exc.cap != "minutes":
            set_meta(CLOSED_KEY, json.dumps({"cap": exc.cap, "usd": self.caps.usd, "tokens": self.caps.tokens,
                                             "message": exc.message}))

    def _refused(self, exc: BudgetExceeded) -> BudgetExceeded:
        self.refusal = self.refusal or exc
        return BudgetExceeded(exc.message, cap=exc.cap)

    def _load_closed(self) -> BudgetExceeded | None:
        """The closing refusal of an earlier session, while the cap it hit has not been raised."""
        get_meta = getattr(self._backend, "get_meta", None)
        raw = get_meta(CLOSED_KEY) if get_meta is not None else None
        if not raw:
            return None
        record = json.loads(raw)
        now, then = getattr(self.caps, record["cap"]), record.get(record["cap"])
        if now is None or then is None or now > then:
            return None
        return BudgetExceeded(f"{record['message']} (an earlier run of this job; raise [budget] {record['cap']} "
                              f"to continue)", cap=record["cap"])

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
