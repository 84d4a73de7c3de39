"""Large K through `selfplay generate` against the mock: n chunked at a server's cap of 128 (ceil(K / 128) requests
plus the one refusal that teaches the cap), kill -9 mid-task then resume paying at most one in-flight window twice,
the curve in summary.json and the report; and the streamed `direct` builder against the workflow's own path."""

from __future__ import annotations

import asyncio
import sqlite3
from types import SimpleNamespace

import pytest

from agents.llm.types import ChatResult, Choice, SamplingParams, Usage
from agents.workflows.registry import run_workflow
from selfplay.core.candidate import Candidate
from selfplay.servers.testing import MockServer
from selfplay.tasks.task import Task
from tests.gen_helpers import cli, kill_generate_mid_job, read_summary, write_job

CAP = 128


def _large_k_job(tmp_path, base_url: str, k: int, concurrency: int = 8):
    config = write_job(tmp_path, base_url, tasks=1, k=k, concurrency=concurrency, timeout_s=10.0)
    (tmp_path / "tasks.jsonl").write_text('{"id": "t0", "prompt": "What is 6 * 7?", "answer": "42"}\n')
    config.write_text(config.read_text().replace("seed = 11", 'seed = 11\nverifier = "math"'))
    return config


def test_a_server_refusing_n_above_128_gets_ceil_k_over_128_requests_and_the_curve_is_reported(tmp_path):
    k = 1000
    with MockServer(seed=3, max_n=CAP) as server:
        config = _large_k_job(tmp_path, server.base_url, k)
        result = cli("generate", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
        stats = server.stats()
    assert result.returncode == 0, result.stderr
    assert stats["completions"] == -(-k // CAP) == 8  # no single-sample fallback
    assert stats["errors"]["n_too_large"] == 1  # the first request, alone, learns the cap from the 400
    summary = read_summary(tmp_path / "out")
    assert summary["candidates"] == k and summary["requests"] == 8
    points = summary["curve"]["points"]
    assert [p["k"] for p in points] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    # the mock's script answers 6 * 7 right three times in four: pass@1 is the pass rate, pass@K is 1
    assert points[0]["pass@k"] == pytest.approx(summary["verified"] / k)
    assert points[-1]["pass@k"] == 1.0 and points[-1]["maj@k"] == 1.0
    assert points[-1]["usd"] == pytest.approx(summary["cost_usd"])
    report = cli("report", str(tmp_path / "out"))
    assert report.returncode == 0, report.stderr
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "pass@k" in markdown and "| 1000 |" in markdown
    assert "data:image/png;base64," in (tmp_path / "out" / "report.html").read_text()


def test_kill_9_at_large_k_then_resume_pays_at_most_one_window_twice(tmp_path):
    k, window = 12_000, 8  # two segments of 8192: killed in the second, the resume counts the first as whole (taken
    with MockServer(seed=4, max_n=CAP, latency_ms=40) as server:  # from the store) and redraws from sample 8192
        config = _large_k_job(tmp_path, server.base_url, k, concurrency=window)
        out = tmp_path / "out"
        kill_generate_mid_job(config, out, at_least=9000, total=k)
        result = cli("generate", "--config", str(config), "--out", str(out), "--no-progress", timeout=600)
        stats = server.stats()
    assert result.returncode == 0, result.stderr
    summary = read_summary(out)
    assert summary["candidates"] == k and summary["stopped_reason"] == "done"
    with sqlite3.connect(out / "run.db") as db:
        twice = db.execute("SELECT key, COUNT(*) FROM reservations GROUP BY key HAVING COUNT(*) > 1").fetchall()
        settled_twice = db.execute("SELECT COUNT(*) FROM (SELECT key FROM reservations WHERE status = 'settled' "
                                   "AND error IS NULL GROUP BY key HAVING COUNT(*) > 1)").fetchone()[0]
        stored = db.execute("SELECT COUNT(*), MIN(sample_index), MAX(sample_index) FROM candidates").fetchone()
        passed = db.execute("SELECT COUNT(*) FROM verdicts WHERE passed AND error IS NULL").fetchone()[0]
    assert stored == (k, 0, k - 1)
    assert summary["verified"] == passed > 0 and summary["dedup"]["candidates"] == k  # reused + redrawn, tallied once
    assert summary["curve"]["points"][0]["pass@k"] == pytest.approx(passed / k)
    assert settled_twice == 0  # a reply paid and stored is never asked for again: the cache serves it
    # sent again after the kill: only what was on the wire (one window), and a 400 probe per session at most
    assert len(twice) <= window + 1, twice
    assert stats["completions"] <= -(-k // CAP) + window


class _OneReply:
    """A fake LLM (not a model) that answers every request with `result` (its first n choices)."""

    supports_n = True
    model = "fake"
    max_n = 3

    def __init__(self, result: ChatResult) -> None:
        self.result = result

    async def chat(self, messages, params: SamplingParams, *, tools=None, sample_offset=0) -> ChatResult:
        return self.result.model_copy(update={"choices": self.result.choices[:params.n]})


def test_the_streamed_direct_builder_equals_the_direct_workflow():
    from selfplay.pipeline.stream import _Builder

    text = "Step 1: 6 * 7.\nStep 2: it is 42.\n\\boxed{42}"
    result = ChatResult(model="fake", cost_usd=0.0009, requests=1, usage=Usage(prompt_tokens=30, completion_tokens=61),
                        choices=[Choice(index=0, message={"role": "assistant", "content": text}, finish_reason="stop",
                                        token_ids=[5, 6, 2], logprobs=[-0.1, -0.2, -0.3]),
                                 Choice(index=1, message={"content": "no idea"}, finish_reason="length"),
                                 Choice(index=2, message={"role": "assistant", "content": ""}, finish_reason="stop")])
    task = Task(id="t0", prompt="What is 6 * 7?", answer="42")
    llm = _OneReply(result)
    messages = task.messages(None)
    trajectories = asyncio.run(run_workflow("direct", llm, task.id, messages, SamplingParams(n=3), 3))
    expected = [Candidate.from_trajectory(t, round_=2, task_kind=task.kind, label="eval") for t in trajectories]
    sampler = SimpleNamespace(round=2, label="eval", llm=llm)
    built = _Builder(sampler, task, messages, 0, None)(result)
    assert [c.model_dump() for c in built] == [c.model_dump() for c in expected]
    assert [c.to_store() for c in built] == [c.to_store() for c in expected]
