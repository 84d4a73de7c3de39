"""Served-policy sampling speed: vLLM (its CPU build) vs `selfplay serve` vs the in-process local backend, same run.

What it is for: the served loop's generation step is K samples per task for a batch of tasks, sent as `n=K`
requests with a bounded number in flight. This bench sends that same workload (tiny-llama, the served loop
tests' model; addition prompts; `--tasks` x `--k` samples of up to `--max-tokens` tokens at temperature 1,
`--concurrency` requests in flight) through
  - a real vLLM server (`python -m vllm.entrypoints.openai.api_server`, started and stopped here) via our
    `openai` backend (which asks vLLM for sampled token ids and log-probs, as the loop does),
  - a `selfplay serve` process over the same checkpoint via the same backend (one torch thread, as vLLM's
    worker has one bound core here),
  - the local backend in this process, one torch thread (what `[policy] mode = "local"` samples with),
and prints samples/s and generated tokens/s for each and their ratios. Each arm gets one untimed warm-up request.
Run it with `.venv-vllm/bin/python bench/bench_served.py` (`make venv-vllm`); in a venv without vLLM it prints
that and exits 0. Extra vLLM server flags: `--vllm-args "--max-num-seqs 512"`; env such as
`VLLM_CPU_OMP_THREADS_BIND` is passed through.
What it does not do: train, verify, or measure a GPU.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prompts(count: int, seed: int = 0) -> list[list[dict]]:
    rng = random.Random(seed)
    return [[{"role": "user", "content": f"{rng.randint(10, 99)}+{rng.randint(10, 99)}="}] for _ in range(count)]


async def run_workload(llm, asks: list[list[dict]], k: int, max_tokens: int, concurrency: int) -> dict:
    """All asks, n=k each, at most `concurrency` in flight; samples/s and completion tokens/s."""
    from agents.llm.types import SamplingParams

    limit = asyncio.Semaphore(concurrency)

    async def one(i: int, ask: list[dict]):
        async with limit:
            return await llm.chat(ask, SamplingParams(n=k, max_tokens=max_tokens, temperature=1.0, seed=i))

    await llm.chat(asks[0], SamplingParams(n=1, max_tokens=2, temperature=1.0))  # warm-up, untimed
    started = time.perf_counter()
    results = await asyncio.gather(*(one(i, ask) for i, ask in enumerate(asks)))
    seconds = time.perf_counter() - started
    samples = sum(len(r.choices) for r in results)
    tokens = sum(r.usage.completion_tokens for r in results)
    with_ids = sum(1 for r in results for c in r.choices if c.token_ids)
    return {"seconds": seconds, "samples": samples, "tokens": tokens, "samples_s": samples / seconds,
            "tokens_s": tokens / seconds, "with_ids": with_ids}


async def served_arm(url: str, model: str, args) -> dict:
    from agents.llm.openai_backend import OpenAIBackend

    backend = OpenAIBackend(model, base_url=url, timeout_s=600, concurrency=args.concurrency)
    try:
        return await run_workload(backend, prompts(args.tasks), args.k, args.max_tokens, args.concurrency)
    finally:
        await backend.aclose()


async def local_arm(checkpoint: str, args) -> tuple[dict, float]:
    from agents.llm.local import LocalBackend

    started = time.monotonic()
    backend = LocalBackend.from_path(checkpoint, name="local")
    setup = time.monotonic() - started
    try:
        return await run_workload(backend, prompts(args.tasks), args.k, args.max_tokens, args.concurrency), setup
    finally:
        await backend.aclose()


def start_serve(checkpoint: str, log: Path) -> tuple[subprocess.Popen, str]:
    from tests.vllm.server import free_port, wait_for

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "selfplay", "serve", "--model", checkpoint, "--port", str(port),
                             "--served-model-name", "base", "--threads", "1"], stdout=open(log, "w"),
                            stderr=subprocess.STDOUT,
                            cwd=ROOT, start_new_session=True)
    wait_for(f"http://127.0.0.1:{port}/health", proc, timeout_s=300)
    return proc, f"http://127.0.0.1:{port}/v1"


def line(name: str, r: dict, setup_s: float) -> str:
    return (f"{name:<16} {r['samples']:>7} {r['tokens']:>7} {r['seconds']:>8.1f} {r['samples_s']:>9.1f} "
            f"{r['tokens_s']:>9.0f} {r['with_ids']:>8} {setup_s:>8.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--vllm-args", default="", help="extra flags for the vLLM server")
    args = parser.parse_args()
    if importlib.util.find_spec("vllm") is None:
        print("bench_served: vLLM is not installed in this venv; run it with .venv-vllm/bin/python (make venv-vllm)")
        return 0
    import torch

    from tests.tiny_model import save_tiny
    from tests.vllm.server import VLLMServer

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-served-"))
    checkpoint = save_tiny(str(tmp / "tiny-llama"), name="tiny-llama")
    print(f"workload: {args.tasks} prompts x n={args.k}, max_tokens={args.max_tokens}, temperature 1, "
          f"{args.concurrency} requests in flight; tiny-llama (1.1M parameters), float32; cores: {os.cpu_count()}; "
          f"load average before: {os.getloadavg()[0]:.1f}")
    rows = []
    started = time.monotonic()
    server = VLLMServer(checkpoint, tmp / "vllm.log", shlex.split(args.vllm_args)).start()
    try:
        vllm_setup = time.monotonic() - started
        rows.append(("vllm (served)", asyncio.run(served_arm(server.url, "base", args)), vllm_setup))
    finally:
        server.stop()
    started = time.monotonic()
    proc, url = start_serve(checkpoint, tmp / "serve.log")
    serve_setup = time.monotonic() - started
    try:
        rows.append(("selfplay serve", asyncio.run(served_arm(url, "base", args)), serve_setup))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    rows.append(("local backend", *asyncio.run(local_arm(checkpoint, args))))
    print(f"{'arm':<16} {'samples':>7} {'tokens':>7} {'seconds':>8} {'samples/s':>9} {'tokens/s':>9} "
          f"{'with ids':>8} {'setup s':>8}")
    for name, result, setup in rows:
        print(line(name, result, setup))
    vllm, serve, local = (r[1]["samples_s"] for r in rows)
    print(f"ratios (samples/s): vllm / selfplay serve = {vllm / serve:.2f}; vllm / local = {vllm / local:.2f}; "
          f"selfplay serve / local = {serve / local:.2f}; load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
