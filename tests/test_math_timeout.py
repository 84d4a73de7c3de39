"""Hard time limits, worker reuse, threads, asyncio, and no leaked processes."""

import asyncio
import threading
import time

import pytest

from verifiers.math import MathVerifier, averify, verify
from verifiers.math.worker import HardTimeout, WorkerPool

LIMIT = 1.0
SLOW = [
    (r"\boxed{9^{9^{9^{9}}}}", "1"),                 # power tower in the answer
    (r"\boxed{2}", r"7^{7^{7^{7}}}"),                # ... or in the reference
    (r"\boxed{(10^{12})!}", "5"),                    # huge factorial
    (r"\boxed{10^{10^{10}} + 1}", r"10^{10^{10}}"),   # big but "close": exact comparison must finish or time out
]


@pytest.mark.parametrize("response, reference", SLOW)
def test_adversarial_inputs_time_out_within_twice_the_limit(response, reference):
    verify(r"\boxed{1}", "1")  # make sure a warm worker exists: start-up is not charged to the limit
    started = time.monotonic()
    verdict = verify(response, reference, timeout=LIMIT)
    elapsed = time.monotonic() - started
    assert elapsed < 2 * LIMIT
    assert verdict.error == "timeout" and not verdict.passed and verdict.failed_to_check


def test_pool_recovers_after_a_timeout():
    verify(r"\boxed{9^{9^{9^{9}}}}", "1", timeout=0.3)
    assert verify(r"\boxed{\frac{1}{2}}", "0.5").passed


def test_many_threads_share_the_pool():
    results = []

    def worker(i):
        results.append(verify(rf"\boxed{{{i} + 1}}", str(i + 1)).passed)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert results == [True] * 16


async def test_asyncio_callers_are_not_blocked_by_a_slow_check():
    started = time.monotonic()
    slow = asyncio.create_task(averify(r"\boxed{9^{9^{9^{9}}}}", "1", timeout=LIMIT))
    fast = await asyncio.gather(*(averify(rf"\boxed{{{i}}}", str(i)) for i in range(5)))
    assert all(v.passed for v in fast)
    assert (await slow).error == "timeout"
    assert time.monotonic() - started < 2 * LIMIT + 1.0


def test_private_pool_lifecycle_leaves_no_process_behind():
    pool = WorkerPool("verifiers.math.check:check", max_workers=2)
    checker = MathVerifier(pool=pool, timeout=LIMIT)
    assert checker(r"\boxed{4}", "4").passed
    assert checker(r"\boxed{(10^{12})!}", "1").error == "timeout"
    assert checker("x", "x").passed
    processes = [w.process for w in pool._workers]
    assert processes
    pool.close()
    assert all(process.poll() is not None for process in processes)


def test_pool_call_raises_hard_timeout_directly():
    pool = WorkerPool("time:sleep", max_workers=1, memory_limit_mb=None)
    try:
        pool.call(0, timeout=30)  # start the worker first: start-up is not charged to any call
        started = time.monotonic()
        with pytest.raises(HardTimeout):
            pool.call(5, timeout=0.2)
        assert time.monotonic() - started < 0.4 + 0.5
    finally:
        pool.close()


def test_bad_reference_is_an_error_not_a_wrong_answer():
    verdict = verify(r"\boxed{3}", r"\frac{")
    assert verdict.error == "bad_reference" and not verdict.passed
