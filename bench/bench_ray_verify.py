"""Benchmark: code-verifier throughput on 1 vs 2 Ray workers (Ray tasks), against in-process threads, same run.

What it does: builds N synthetic code candidates (a small function each, half right, half wrong,
with assert tests), starts a local Ray cluster with 2 CPUs, and checks them through exactly the path a
`[executor] kind = "ray"` job uses: `RayTaskPool` (one Ray task per check, `num_cpus = 1` each) with
at most W checks in flight, for W = 1 and 2. The same candidates go through the local executor's
path (`selfplay.pipeline.verify.check_code` on a thread pool of W threads) as the peer. Each configuration is
warmed up first (every Ray worker process starts its own sandbox pool), then timed; best of
`--repeats`. Prints checks/s and the ratios: 2 vs 1 Ray workers (scaling), Ray vs threads (overhead).
What it does NOT do: measure a multi-node cluster (one machine here), or the LLM side of a job.
Usage: python bench/bench_ray_verify.py [--checks 300] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Executor, ThreadPoolExecutor, wait

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from selfplay.tasks.task import Task  # noqa: E402
from selfplay.pipeline.verify import check_code  # noqa: E402


def cases(count: int) -> list[tuple[dict, Task]]:
    out = []
    for i in range(count):
        body = f"return x * {i} + sum(range(50))" if i % 2 == 0 else "return None"
        program = f"```python\ndef f(x):\n    {body}\n```"
        task = Task(id=f"c{i}", prompt="Write f.", tests=[f"assert f({j}) == {j * i + 1225}" for j in range(3)])
        out.append(({"final_answer": program}, task))
    return out


def run_window(pool: Executor, work: list[tuple[dict, Task]], window: int) -> tuple[float, int]:
    """checks/s with at most `window` checks in flight, and how many passed."""
    started = time.perf_counter()
    pending, passed, queue = set(), 0, list(work)
    while queue or pending:
        while queue and len(pending) < window:
            candidate, task = queue.pop()
            pending.add(pool.submit(check_code, candidate, task))
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        passed += sum(1 for f in done if f.result().passed)
    return len(work) / (time.perf_counter() - started), passed


def best(pool: Executor, work: list, window: int, repeats: int) -> tuple[float, int]:
    run_window(pool, work[: 4 * window], window)  # warm every worker's sandbox
    results = [run_window(pool, work, window) for _ in range(repeats)]
    return max(r[0] for r in results), results[0][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import ray

    from selfplay.pipeline.executors.ray_executor import RayTaskPool

    work = cases(args.checks)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        ray_pool = RayTaskPool(ray, num_cpus=1)
        rates = {}
        for window in (1, 2):
            with ThreadPoolExecutor(window) as threads:
                rates[("threads", window)], passed_threads = best(threads, work, window, args.repeats)
            rates[("ray", window)], passed_ray = best(ray_pool, work, window, args.repeats)
            assert passed_ray == passed_threads == args.checks // 2 + args.checks % 2, (passed_ray, passed_threads)
    finally:
        ray.shutdown()
    print(f"{args.checks} code checks (3 asserts each, half pass), cpus={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for window in (1, 2):
        print(f"workers={window}: in-process threads {rates[('threads', window)]:7.1f} checks/s | "
              f"Ray tasks {rates[('ray', window)]:7.1f} checks/s | ray/threads "
              f"{rates[('ray', window)] / rates[('threads', window)]:5.2f}x")
    print(f"Ray scaling, 2 workers vs 1: {rates[('ray', 2)] / rates[('ray', 1)]:.2f}x "
          f"(threads: {rates[('threads', 2)] / rates[('threads', 1)]:.2f}x)")


if __name__ == "__main__":
    main()
