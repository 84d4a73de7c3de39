"""Budget ledger: reserve/settle, caps never exceeded under concurrency, persistence and orphans."""

import asyncio
import random

import pytest

from agents.llm.types import BudgetExceeded
from agents.money.ledger import BudgetLedger, Caps
from selfplay.core.candidate import Candidate
from selfplay.core.store import RunStore


def test_reserve_then_settle_moves_money_from_reserved_to_spent():
    ledger = BudgetLedger(Caps(usd=1.0))
    r = ledger.reserve(0.4, 100)
    assert ledger.committed_usd() == pytest.approx(0.4)
    ledger.settle(r, 0.1, 30)
    assert ledger.totals.spent_usd == pytest.approx(0.1)
    assert ledger.committed_usd() == pytest.approx(0.1)


def test_request_that_does_not_fit_is_refused():
    ledger = BudgetLedger(Caps(usd=1.0))
    ledger.reserve(0.7, 0)
    with pytest.raises(BudgetExceeded) as info:
        ledger.reserve(0.4, 0)
    assert info.value.cap == "usd"
    assert ledger.refusal is not None


def test_token_and_time_caps():
    ledger = BudgetLedger(Caps(tokens=100))
    ledger.reserve(0, 60)
    with pytest.raises(BudgetExceeded):
        ledger.reserve(0, 41)
    with pytest.raises(BudgetExceeded) as info:
        BudgetLedger(Caps(minutes=0)).reserve(0, 0)
    assert info.value.cap == "minutes"


async def test_cap_never_exceeded_with_256_requests_in_flight():
    cap = 0.05
    ledger = BudgetLedger(Caps(usd=cap))
    rng = random.Random(0)

    async def request():
        worst = 0.001
        try:
            r = ledger.reserve(worst, 10)
        except BudgetExceeded:
            return 0
        await asyncio.sleep(rng.random() / 100)
        ledger.settle(r, worst * rng.random(), 5)  # real cost <= worst case
        assert ledger.committed_usd() <= cap + 1e-12
        return 1

    sent = sum(await asyncio.gather(*(request() for _ in range(256))))
    assert ledger.totals.spent_usd <= cap
    assert 0 < sent < 256


def test_ledger_survives_restart_and_unsettled_reservations_become_orphans(tmp_path):
    with RunStore(tmp_path) as store:
        ledger = BudgetLedger(Caps(usd=1.0), backend=store)
        ledger.settle(ledger.reserve(0.2, 10, key="a"), 0.1, 8, {"key": "a", "result": {"usage": {}, "requests": 1}})
        ledger.reserve(0.3, 20, key="b")  # never settled: the process "dies"
    with RunStore(tmp_path) as store:
        ledger = BudgetLedger(Caps(usd=1.0), backend=store)
        assert ledger.totals.spent_usd == pytest.approx(0.1)
        assert ledger.totals.orphaned_usd == pytest.approx(0.3)
        assert ledger.committed_usd() == pytest.approx(0.4)
        assert store.orphaned_keys() == ["b"]
        with pytest.raises(BudgetExceeded):
            ledger.reserve(0.61, 0)


def _on_disk(path, sql: str) -> list[tuple]:
    """What another process would read: a second connection sees committed rows only."""
    import sqlite3

    with sqlite3.connect(path / "run.db") as db:
        return db.execute(sql).fetchall()


async def test_group_commits_put_a_reservation_on_disk_before_areserve_returns(tmp_path):
    with RunStore(tmp_path) as store:
        ledger = BudgetLedger(Caps(usd=1.0), backend=store)
        async with store.group_commits(max_delay_s=60):
            first, second = await asyncio.gather(ledger.areserve(0.1, 5, key="a"), ledger.areserve(0.1, 5, key="b"))
            assert _on_disk(tmp_path, "SELECT key, status FROM reservations ORDER BY key") == [
                ("a", "reserved"), ("b", "reserved")]
            ledger.settle(first, 0.05, 4, {"key": "a", "result": {"usage": {}, "requests": 1}})
            store.put_candidates(0, [Candidate(task_id="t", workflow="direct", sample_index=0)])
            assert store.get_response("a") is not None  # this process reads what is staged
            assert _on_disk(tmp_path, "SELECT COUNT(*) FROM candidates") == [(0,)]  # staged, not committed yet
            await ledger.areserve(0.1, 5, key="c")  # the next reservation's commit carries them
            assert _on_disk(tmp_path, "SELECT status FROM reservations WHERE key = 'a'") == [("settled",)]
            assert _on_disk(tmp_path, "SELECT COUNT(*) FROM candidates") == [(1,)]
            ledger.settle(second, 0.05, 4, {"key": "b", "result": {"usage": {}, "requests": 1}})
        assert _on_disk(tmp_path, "SELECT status FROM reservations WHERE key = 'b'") == [("settled",)]


async def test_group_commits_commit_staged_writes_within_max_delay(tmp_path):
    with RunStore(tmp_path) as store:
        async with store.group_commits(max_delay_s=0.05):
            store.put_candidates(0, [Candidate(task_id="t", workflow="direct", sample_index=0)])
            assert _on_disk(tmp_path, "SELECT COUNT(*) FROM candidates") == [(0,)]
            await asyncio.sleep(0.2)
            assert _on_disk(tmp_path, "SELECT COUNT(*) FROM candidates") == [(1,)]


async def test_areserve_waits_for_settlements_and_spends_the_cap_to_the_end():
    cap, worst = 0.05, 0.001
    ledger = BudgetLedger(Caps(usd=cap))
    rng = random.Random(1)
    sent = 0

    async def request():
        nonlocal sent
        while True:
            try:
                r = await ledger.areserve(worst, 10)
            except BudgetExceeded:
                return
            await asyncio.sleep(rng.random() / 200)
            ledger.settle(r, worst * (0.5 + rng.random() / 2), 5)
            sent += 1
            assert ledger.committed_usd() <= cap + 1e-12

    await asyncio.gather(*(request() for _ in range(64)))
    assert ledger.waits > 0 and ledger.in_flight == 0
    assert cap - worst <= ledger.totals.spent_usd <= cap
    assert ledger.closed is not None and "nothing in flight" in ledger.closed.message
    assert "needs up to $0.001000" in ledger.closed.message


async def test_a_large_request_is_not_starved_by_small_ones():
    ledger = BudgetLedger(Caps(usd=1.0))
    held = [ledger.reserve(0.1, 0) for _ in range(9)]   # 0.9 in flight
    big = asyncio.create_task(ledger.areserve(0.5, 0))
    await asyncio.sleep(0)
    small = asyncio.create_task(ledger.areserve(0.05, 0))  # would fit now, but is behind the big one
    await asyncio.sleep(0.01)
    assert not big.done() and not small.done()
    for r in held[:4]:
        ledger.settle(r, 0.1, 0)
        await asyncio.sleep(0.001)
    assert not big.done()  # 0.5 in flight + 0.4 spent: 0.5 more does not fit yet
    for r in held[4:]:
        ledger.settle(r, 0.0, 0)  # spent 0.4, nothing in flight
    assert (await big).usd == 0.5
    assert (await small).usd == 0.05
    assert ledger.committed_usd() == pytest.approx(0.95)


async def test_ledger_closes_only_when_nothing_is_in_flight():
    ledger = BudgetLedger(Caps(usd=1.0))
    r = ledger.reserve(0.8, 0)
    waiting = asyncio.create_task(ledger.areserve(0.5, 0))
    await asyncio.sleep(0.01)
    assert not waiting.done() and ledger.closed is None
    ledger.settle(r, 0.7, 0)  # 0.3 left, nothing in flight: 0.5 will never fit
    with pytest.raises(BudgetExceeded) as info:
        await waiting
    assert "spent $0.7000" in info.value.message and ledger.closed is not None
    with pytest.raises(BudgetExceeded):
        await ledger.areserve(0.01, 0)  # closed: even a small request is refused now


async def test_cancelled_waiter_leaves_the_queue():
    ledger = BudgetLedger(Caps(usd=1.0))
    r = ledger.reserve(0.9, 0)
    first = asyncio.create_task(ledger.areserve(0.5, 0))
    await asyncio.sleep(0)
    second = asyncio.create_task(ledger.areserve(0.05, 0))
    await asyncio.sleep(0.01)
    first.cancel()
    assert (await second).usd == 0.05
    ledger.settle(r, 0.0, 0)


async def test_a_closed_ledger_stays_closed_for_a_same_cap_rerun_and_reopens_for_a_higher_cap(tmp_path):
    with RunStore(tmp_path / "run") as store:
        ledger = BudgetLedger(Caps(usd=1.0), backend=store)
        ledger.settle(await ledger.areserve(0.9, 0), 0.9, 0)
        with pytest.raises(BudgetExceeded):
            await ledger.areserve(0.2, 0)
    with RunStore(tmp_path / "run") as store:
        again = BudgetLedger(Caps(usd=1.0), backend=store)
        with pytest.raises(BudgetExceeded) as info:
            await again.areserve(0.05, 0)  # it would fit, but the job already stopped at this cap
        assert "earlier run" in info.value.message
        with pytest.raises(BudgetExceeded):
            again.check_open()
    with RunStore(tmp_path / "run") as store:
        raised = BudgetLedger(Caps(usd=2.0), backend=store)
        assert (await raised.areserve(0.2, 0)).usd == 0.2
