"""Generation throughput of `selfplay generate` vs a bare AsyncOpenAI + asyncio.gather loop.

Both talk to the same mock endpoint (a separate process, fixed latency) with the same tasks, `n`,
and concurrency, in the same run; the ratio (ours / bare, whole job against the whole loop) shows
what all the bookkeeping costs: cache look-ups, budget reservations, the SQLite run store, the
summary, exports. Goal: >= 0.9. Our backend sends through the same SDK client but skips the SDK's
typed request/response layer (see `agents/llm/openai_backend.py`), which pays for part of that
bookkeeping; the CPU columns (this process's CPU time per task, best run) show both sides' costs.
Runs alternate (bare, ours, bare, ours) and the best of each is kept, to damp noise on a busy machine.
Last row: the same job (`--batch-tasks` tasks) online and in batch mode (`[model] batch = true`) on a mock
whose batches take `--batch-latency-s` seconds: cost (billed at the batch price: half) and wall time.
Usage: python bench/bench_generate.py [--tasks 1500] [--latency-ms 50] [--k 4] [--batch-tasks 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selfplay.config.generate import GenerateConfig  # noqa: E402
from selfplay.jobs.generate import GenerateJob  # noqa: E402
from selfplay.servers.testing import MockServer  # noqa: E402


def write_tasks(path: Path, count: int) -> list[str]:
    prompts = [f"What is {i} + {i + 7}?" for i in range(count)]
    path.write_text("".join(json.dumps({"id": f"t{i}", "prompt": p}) + "\n" for i, p in enumerate(prompts)))
    return prompts


async def bare(base_url: str, prompts: list[str], k: int, concurrency: int) -> tuple[float, float]:
    """Wall and CPU seconds of the bare loop."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    limit = asyncio.Semaphore(concurrency)

    async def one(prompt: str):
        async with limit:
            return await client.chat.completions.create(
                model="mock-model", messages=[{"role": "user", "content": prompt}], n=k, max_tokens=64)

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(p) for p in prompts))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return elapsed, cpu


async def ours(base_url: str, tasks: Path, k: int, concurrency: int, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of a whole `selfplay generate` job (setup, summary and exports included)."""
    elapsed, cpu, _ = await job(base_url, tasks, k, concurrency, out)
    return elapsed, cpu


async def job(base_url: str, tasks: Path, k: int, concurrency: int, out: Path,
              batch: bool = False) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and cost of a whole job (online, or through the Batch API)."""
    model = {"name": "mock-model", "base_url": base_url, **({"batch": True, "batch_poll_s": 0.5} if batch else {})}
    config = GenerateConfig.model_validate({
        "model": model,
        "generate": {"tasks": str(tasks), "k": k, "max_tokens": 64, "concurrency": concurrency},
        "budget": {"usd": 1000.0}, "prices": {"mock-model": {"input": 0.15, "output": 0.6}}})
    started, cpu = time.perf_counter(), time.process_time()
    summary = await GenerateJob(config, out, show_progress=False).run()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert summary["stopped_reason"] == "done" and summary["cache_hits"] == 0, summary
    return elapsed, cpu, summary["cost_usd"]


def online_vs_batch(args: argparse.Namespace, tmp: Path) -> None:
    with MockServer(latency_ms=args.latency_ms, subprocess=True, batch_latency_s=args.batch_latency_s) as server:
        tasks = tmp / "batch-tasks.jsonl"
        write_tasks(tasks, args.batch_tasks)
        rows = {mode: asyncio.run(job(server.base_url, tasks, args.k, 256, tmp / f"mode-{mode}", batch=mode == "batch"))
                for mode in ("online", "batch")}
    print(f"\nsame job, {args.batch_tasks} tasks, concurrency 256, batch latency {args.batch_latency_s:g}s")
    print(f"{'mode':>8} {'cost $':>10} {'wall s':>8}")
    for mode, (wall, _cpu, cost) in rows.items():
        print(f"{mode:>8} {cost:>10.5f} {wall:>8.2f}")
    print(f"batch / online cost: {rows['batch'][2] / rows['online'][2]:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1500)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-tasks", type=int, default=300)
    parser.add_argument("--batch-latency-s", type=float, default=3.0)
    args = parser.parse_args()
    print(f"tasks={args.tasks} n={args.k} latency={args.latency_ms}ms (mock endpoint in its own process)")
    print(f"{'concurrency':>11} {'bare req/s':>11} {'selfplay req/s':>15} {'ratio':>7} "
          f"{'bare cpu ms/task':>17} {'selfplay cpu ms/task':>21}")
    with tempfile.TemporaryDirectory() as tmp, MockServer(latency_ms=args.latency_ms, subprocess=True) as server:
        tasks = Path(tmp) / "tasks.jsonl"
        prompts = write_tasks(tasks, args.tasks)
        for concurrency in (64, 256):
            best_bare, best_ours = (float("inf"), 0.0), (float("inf"), 0.0)
            for repeat in range(args.repeats):
                best_bare = min(best_bare, asyncio.run(bare(server.base_url, prompts, args.k, concurrency)))
                out = Path(tmp) / f"run-{concurrency}-{repeat}"
                best_ours = min(best_ours, asyncio.run(ours(server.base_url, tasks, args.k, concurrency, out)))
            rate_bare, rate_ours = args.tasks / best_bare[0], args.tasks / best_ours[0]
            cpu_bare, cpu_ours = (1000 * best[1] / args.tasks for best in (best_bare, best_ours))
            print(f"{concurrency:>11} {rate_bare:>11.0f} {rate_ours:>15.0f} {rate_ours / rate_bare:>7.2f} "
                  f"{cpu_bare:>17.2f} {cpu_ours:>21.2f}")
        online_vs_batch(args, Path(tmp))


if __name__ == "__main__":
    main()
