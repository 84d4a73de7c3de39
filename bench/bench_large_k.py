"""Large K: one task sampled K = 1,000,000 times by `selfplay generate` against the mock (n cap 128), vs the floor.

What it measures, for each K given: the wall time, samples/s, peak memory (the job's max RSS, from `wait4`),
CPU seconds and bytes per candidate on disk (the whole run directory) of a `selfplay generate` job (one task,
`verifier = "math"`, `[model] max_n` unset so the cap is learned from the mock's 400), and the same requests sent
by a bare `AsyncOpenAI` loop that only counts the choices it receives (ceil(K / 128) requests of
`min(left, 128)` choices, 64 in flight: the floor; its wall and CPU seconds), printed as a ratio of samples/s
(goal: >= 0.5).
The mock runs in its own process (no latency added): on a 2-core machine it competes with both sides for CPU, so
the figures move with the machine's load (printed, 1-minute average, at the end of each row); runs alternate
(bare, ours) and the best of `--repeats` is kept. `--profile FILE` runs ours under cProfile.
Usage: python bench/bench_large_k.py [--k 100000 1000000] [--repeats 1] [--concurrency 64] [--out DIR] [--png FILE]
                                    [--skip-bare] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selfplay.servers.testing import MockServer  # noqa: E402

CAP = 128
PROMPT = "What is 123 * 457?"
ANSWER = "56211"
# A hard task for the mock: 3 replies in 60 are right, one wrong answer comes twice in 60, 55 others once each, so
# pass@1 is ~5%, pass@k climbs to 1 by k ~ 100, and maj@k climbs only once the right answer out-votes 56111.
SCRIPT = {"models": ["mock-model"], "rules": [{"name": "hard", "match": r"What is 123 \* 457", "replies": [
    *[f"We multiply: 123 * 457 = {ANSWER}. The answer is \\boxed{{{ANSWER}}}." for _ in range(3)],
    *["123 * 457 is about 56111. The answer is \\boxed{56111}." for _ in range(2)],
    *[f"I get 123 * 457 = {56000 + 7 * i}. The answer is \\boxed{{{56000 + 7 * i}}}." for i in range(55)]]}]}
CONFIG = """
[model]
name = "mock-model"
base_url = "{base_url}"
timeout_s = 60
max_attempts = 8

[prices."mock-model"]
input = 0.15
output = 0.6

[generate]
tasks = "tasks.jsonl"
k = {k}
max_tokens = 64
concurrency = {concurrency}
seed = 11
verifier = "math"

[budget]
usd = 1000.0
"""


def write_job(out: Path, base_url: str, k: int, concurrency: int) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "tasks.jsonl").write_text(json.dumps({"id": "t0", "prompt": PROMPT, "answer": ANSWER}) + "\n")
    config = out / "gen.toml"
    config.write_text(CONFIG.format(base_url=base_url, k=k, concurrency=concurrency))
    return config


def run_ours(base_url: str, k: int, concurrency: int, work: Path, profile: str | None = None) -> dict:
    """One `selfplay generate` process: wall, CPU, peak RSS (wait4), bytes on disk, its summary (with `profile`:
    the process runs under cProfile, its stats written there)."""
    config = write_job(work, base_url, k, concurrency)
    out = work / "out"
    profiler = ["-m", "cProfile", "-o", profile] if profile else []
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, *profiler, "-m", "selfplay", "generate", "--config", str(config),
                                "--out", str(out), "--no-progress"], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"selfplay generate failed ({process.returncode}): {process.stderr.read().decode()[-2000:]}")
    summary = json.loads((out / "summary.json").read_text())
    disk = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
            "bytes": disk, "summary": summary}


async def bare(base_url: str, k: int, concurrency: int) -> tuple[float, float, int, int]:
    """The floor: the same ceil(K / 128) requests, `concurrency` in flight, counting the choices received;
    (wall, CPU seconds of this process, choices received, requests)."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
    limit = asyncio.Semaphore(concurrency)
    received = 0

    async def one(first: int) -> None:
        nonlocal received
        async with limit:
            reply = await client.chat.completions.create(
                model="mock-model", messages=[{"role": "user", "content": PROMPT}], n=min(CAP, k - first),
                max_tokens=64, seed=11 + first)
        received += len(reply.choices)

    started, cpu = time.perf_counter(), time.process_time()
    pending: set[asyncio.Task] = set()
    for first in range(0, k, CAP):  # a bounded set of tasks, not K / 128 coroutines at once
        if len(pending) >= 4 * concurrency:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        pending.add(asyncio.ensure_future(one(first)))
    await asyncio.gather(*pending)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await client.close()
    return elapsed, cpu, received, -(-k // CAP)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--k", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--out", default=None, help="keep the run directories here (default: a temporary one)")
    parser.add_argument("--skip-bare", action="store_true", help="run only ours (the floor measured elsewhere)")
    parser.add_argument("--png", default=None, help="write the curve of the last K here (e.g. docs/large_k_curve.png)")
    parser.add_argument("--profile", default=None, help="run ours under cProfile, stats to FILE (read them with "
                        "`python -m pstats FILE`; the timings then include the profiler's overhead)")
    args = parser.parse_args()
    print(f"one task, verifier = math, mock n cap {CAP} (its own process, no added latency), "
          f"concurrency {args.concurrency}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"{'K':>9} {'bare s':>8} {'bare /s':>9} {'bare cpu':>8} {'ours s':>8} {'ours /s':>9} {'ratio':>6} "
          f"{'ours cpu':>8} {'peak MB':>8} {'B/cand':>7} {'requests':>9} {'pass@1':>7} {'maj@K':>6} {'load':>5}")
    with tempfile.TemporaryDirectory() as tmp, MockServer(SCRIPT, subprocess=True, max_n=CAP) as server:
        root = Path(args.out) if args.out else Path(tmp)
        for k in args.k:
            best_bare, bare_cpu, best_ours = None, None, None
            for repeat in range(args.repeats):
                if not args.skip_bare:
                    wall, cpu, received, requests = asyncio.run(bare(server.base_url, k, args.concurrency))
                    assert received == k, (received, k)
                    if best_bare is None or wall < best_bare:
                        best_bare, bare_cpu = wall, cpu
                ours = run_ours(server.base_url, k, args.concurrency, root / f"k{k}-{repeat}", args.profile)
                if best_ours is None or ours["wall"] < best_ours["wall"]:
                    best_ours = ours
            s, curve = best_ours["summary"], best_ours["summary"]["curve"]["points"]
            assert s["candidates"] == k and s["stopped_reason"] == "done", s
            bare_s = (f"{best_bare:>8.1f} {k / best_bare:>9,.0f} {bare_cpu:>8.1f}" if best_bare
                      else f"{'-':>8} {'-':>9} {'-':>8}")
            ratio = f"{best_bare / best_ours['wall']:>6.2f}" if best_bare else f"{'-':>6}"
            print(f"{k:>9,} {bare_s} {best_ours['wall']:>8.1f} "
                  f"{k / best_ours['wall']:>9,.0f} {ratio} {best_ours['cpu']:>8.1f} "
                  f"{best_ours['rss_mb']:>8.0f} {best_ours['bytes'] / k:>7.0f} {s['requests']:>9,} "
                  f"{curve[0]['pass@k']:>7.3f} {curve[-1]['maj@k']:>6.3f} {os.getloadavg()[0]:>5.1f}", flush=True)
            last = best_ours
        if args.png:
            from selfplay.pipeline.curve_report import curve_png

            title = f"one task, K = {args.k[-1]:,} samples (mock, pass@1 = {curve[0]['pass@k']:.3f})"
            Path(args.png).write_bytes(curve_png(last["summary"]["curve"], title))
            print(f"curve -> {args.png}")


if __name__ == "__main__":
    main()
