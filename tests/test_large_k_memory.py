"""Large K in constant memory: one task streamed through the generate job's sampler at K = 5k and K = 50k, each
in its own process; the peak RSS of the larger run stays within a generous bound of the smaller one's.

The policy is a fast in-process fake (not a model, not HTTP: labelled as such) that honours an n cap of 128 like
OpenAI's; the run store, the streamed sampler (`TaskSampler(segment=...)`), the math verifier and the summary's
tally are the real ones. Sizes: 5k vs 50k rather than 20k vs 200k: on the shared 2-core machine 100k samples
(~50 s of CPU here) ran past pytest's 300 s timeout. Before the streamed sampler, a task's K records were all held
(~10 KB each): 45k more samples grew the peak by ~450 MB.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.llm.types import ChatResult, Choice, SamplingParams, Usage  # noqa: E402


class CappedFakeLLM:
    """A fake policy: choice j of a request seeded s answers 42 when (s + j) % 5 == 0, else s + j (varied answers)."""

    supports_n = True
    model = "fake"
    max_n = 128

    def __init__(self) -> None:
        self.requests = 0

    async def chat(self, messages, params: SamplingParams, *, tools=None, sample_offset=0) -> ChatResult:
        assert params.n <= self.max_n, params.n
        self.requests += 1
        await asyncio.sleep(0)
        choices = []
        for j in range(params.n):
            value = (params.seed or 0) + j
            answer = 42 if value % 5 == 0 else 1000 + value % 47
            text = f"So the answer is \\boxed{{{answer}}}."
            choices.append(Choice(index=j, message={"role": "assistant", "content": text}, finish_reason="stop"))
        return ChatResult(model=self.model, choices=choices, usage=Usage(prompt_tokens=7, completion_tokens=9 * params.n))


def sample_one_task(k: int, out: Path) -> dict:
    """K samples of one task through the streamed sampler; the figures and this process's peak RSS."""
    from selfplay.core.store import RunStore
    from selfplay.pipeline.sample import TaskSampler
    from selfplay.pipeline.stream import SEGMENT
    from selfplay.tasks.task import Task

    gen = SimpleNamespace(workflow="direct", k=k, system_prompt=None, workflow_options={}, verifier="math",
                          verify_concurrency=2, max_tokens=32, temperature=1.0, top_p=1.0, stop=None)
    task = Task(id="t0", prompt="What is 6 * 7?", answer="42")
    llm = CappedFakeLLM()

    async def run() -> object:
        with RunStore(out) as store:
            sampler = TaskSampler(gen, llm, store, 0, executor=None, seed_of=lambda _: 11, segment=SEGMENT, window=64)
            async with store.group_commits():
                return await sampler.run(task)

    outcome = asyncio.run(run())
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"k": k, "sampled": outcome.sampled, "passed": outcome.passed, "candidates": outcome.candidates,
            "requests": llm.requests, "peak_mb": peak_kb / 1024, "kept": len(outcome.records) + len(outcome.stored)}


def _child(k: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run([sys.executable, __file__, str(k), tmp], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_k():
    small, large = _child(5_000), _child(50_000)
    for figures in (small, large):
        k = figures["k"]
        assert figures["sampled"] == figures["candidates"] == k and figures["kept"] == 0
        assert figures["passed"] == k // 5  # one sample in five answers 42
        assert figures["requests"] == -(-k // 128)  # n chunked at the cap: ceil(K / 128) requests
    # 10x the samples: the peak may move by noise (allocator, SQLite page cache), not by ~450 MB (10 KB a record)
    assert large["peak_mb"] < small["peak_mb"] + 60, (small, large)


if __name__ == "__main__":
    print(json.dumps(sample_one_task(int(sys.argv[1]), Path(sys.argv[2]))))
