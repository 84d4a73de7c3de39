"""`[executor] kind = "ray"` on a local 2-CPU Ray cluster: the same results as in-process, one ledger, a killed worker.

Every job here is deterministic (mock endpoints with the same seed answer the same request the
same way), so the Ray executor must give exactly the in-process executor's candidates, verdicts,
requests and cost, with requests balanced over two endpoints, code checks run as Ray tasks, the
budget cap held by the driver's single ledger, and a worker killed (SIGKILL) mid-job costing
nothing but a re-send of what it had in flight.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import tomllib

import pytest

ray = pytest.importorskip("ray")

from selfplay.config.generate import GenerateConfig  # noqa: E402
from selfplay.pipeline.executors.ray_executor import worker_name  # noqa: E402
from selfplay.jobs.generate import GenerateJob  # noqa: E402
from selfplay.core.store import RunStore  # noqa: E402
from selfplay.servers.testing import MockServer  # noqa: E402
from tests.gen_helpers import cli, kill_generate_mid_job, read_summary, write_job  # noqa: E402

VOLATILE = ("requests", "cache_hits", "cost_usd", "latency_s")  # how a candidate was paid for, not what it is
CODE_SCRIPT = {"rules": [{"name": "code", "match": r"returns (\d+)", "pick": "cycle", "replies": [
    "```python\ndef f():\n    return {1}\n```", "```python\ndef f():\n    return 0\n```"]}]}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def code_tasks(path, count: int) -> None:
    path.write_text("".join(json.dumps({"id": f"c{i}", "prompt": f"Write f that returns {i + 1}.",
                                        "tests": [f"assert f() == {i + 1}"]}) + "\n" for i in range(count)))


def math_tasks(path, count: int) -> None:
    path.write_text("".join(json.dumps({"id": f"t{i}", "prompt": f"What is {i} + {2 * i}?", "answer": str(3 * i)})
                            + "\n" for i in range(count)))


def config(tmp, base_url: str, *, verifier: str | None = None, k: int = 4, concurrency: int = 8,
           budget: dict | None = None, executor: dict | None = None) -> GenerateConfig:
    return GenerateConfig.model_validate({
        "model": {"name": "mock-model", "base_url": base_url, "timeout_s": 5},
        "prices": {"mock-model": {"input": 1.0, "output": 2.0}},
        "generate": {"tasks": str(tmp / "tasks.jsonl"), "k": k, "max_tokens": 64, "seed": 11,
                     "concurrency": concurrency, "verifier": verifier, "verify_concurrency": 2},
        "budget": budget or {"usd": 10.0},
        "executor": executor or {"kind": "local"}})


def run_job(cfg: GenerateConfig, out) -> dict:
    return asyncio.run(GenerateJob(cfg, out, show_progress=False).run())


def results(out) -> tuple[list[dict], dict]:
    with RunStore(out) as store:
        candidates = [c.model_dump(mode="json", exclude=set(VOLATILE)) for c in store.iter_candidates(0)]
        verdicts = {f"{t}/{w}/{i}": {k: v for k, v in body.items() if k != "details"}
                    for (t, w, i), body in store.verdicts_for(0, "code").items()}
    return candidates, verdicts


def test_ray_equals_in_process_with_code_checks_on_ray_and_two_endpoints(tmp_path):
    code_tasks(tmp_path / "tasks.jsonl", 12)
    with MockServer(CODE_SCRIPT, seed=3, latency_ms=5) as one, MockServer(CODE_SCRIPT, seed=3, latency_ms=5) as two:
        local = run_job(config(tmp_path, one.base_url, verifier="code"), tmp_path / "local")
        one.reset()
        on_ray = run_job(config(tmp_path, one.base_url, verifier="code", executor={
            "kind": "ray", "workers": 2, "endpoints": [two.base_url]}), tmp_path / "ray")
        served = [one.stats()["completions"], two.stats()["completions"]]
    assert results(tmp_path / "ray") == results(tmp_path / "local")
    assert len(results(tmp_path / "ray")[1]) == 48  # every candidate has a verdict, computed in Ray tasks
    for key in ("candidates", "verified", "requests", "prompt_tokens", "completion_tokens", "cost_usd", "errors"):
        assert on_ray[key] == local[key], key
    assert on_ray["verified"] == 24  # the cycle rule: every other sample is right
    assert sum(served) == 12 and min(served) > 0  # both replicas answered


def test_one_ledger_holds_the_usd_cap_with_many_workers(tmp_path):
    math_tasks(tmp_path / "tasks.jsonl", 200)
    cap = 0.01
    with MockServer(seed=2, latency_ms=10) as server:
        summary = run_job(config(tmp_path, server.base_url, concurrency=64, budget={"usd": cap},
                                 executor={"kind": "ray", "workers": 2}), tmp_path / "o")
        stats = server.stats()
    billed = (stats["usage"]["prompt_tokens"] * 1.0 + stats["usage"]["completion_tokens"] * 2.0) / 1e6
    assert summary["stopped_reason"] == "budget"
    assert billed <= cap and summary["cost_usd"] == pytest.approx(billed)
    assert 0 < summary["tasks_complete"] < 200


async def _kill_a_worker_mid_job(job: GenerateJob, server: MockServer, after: int) -> int:
    """SIGKILL worker 0's process once `after` replies were served; returns the killed pid."""
    while server.stats()["completions"] < after:
        await asyncio.sleep(0.02)
    handle = ray.get_actor(worker_name(job.run_dir, 0))
    pid = await handle.pid.remote()
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_worker_killed_mid_job_loses_nothing_and_pays_nothing_twice(tmp_path):
    math_tasks(tmp_path / "tasks.jsonl", 80)
    with MockServer(seed=9, latency_ms=60) as server:
        reference = run_job(config(tmp_path, server.base_url, concurrency=8), tmp_path / "ref")
        server.reset()
        job = GenerateJob(config(tmp_path, server.base_url, concurrency=8, executor={"kind": "ray", "workers": 2}),
                          tmp_path / "killed", show_progress=False)

        async def both():
            return await asyncio.gather(job.run(), _kill_a_worker_mid_job(job, server, after=20))

        started = time.monotonic()
        summary, _ = asyncio.run(both())
        stats = server.stats()
    assert results(tmp_path / "killed") == results(tmp_path / "ref")
    assert summary["stopped_reason"] == "done" and summary["errors"] == {}
    assert summary["requests"] == reference["requests"] == 80
    assert summary["cost_usd"] == pytest.approx(reference["cost_usd"])
    lost = summary["failed_requests"].get("worker_lost", 0)
    assert lost >= 1, "the kill must land with requests in flight"
    # Only a request that was on the wire when its worker died can have been answered twice.
    assert stats["duplicate_replies"] <= lost
    assert time.monotonic() - started < 60


def test_a_killed_ray_driver_resumes_with_nothing_lost_and_nothing_paid_twice(tmp_path):
    """kill -9 of `selfplay generate` (the driver: its Ray actors die with it), then the same command again."""
    address = ray.get_runtime_context().gcs_address  # this module's cluster, not whatever "auto" finds
    with MockServer(seed=9, latency_ms=60) as server:
        config = write_job(tmp_path, server.base_url, tasks=80, k=4, concurrency=8)
        reference = run_job(GenerateConfig.model_validate(_toml(config)), tmp_path / "ref")
        server.reset()
        with config.open("a") as handle:
            handle.write(f'\n[executor]\nkind = "ray"\naddress = "{address}"\nworkers = 2\n')
        out = tmp_path / "killed"
        kill_generate_mid_job(config, out, at_least=80, total=320)
        resumed = cli("generate", "--config", str(config), "--out", str(out), "--no-progress")
        stats = server.stats()
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "config.json").read_text())["executor"]["kind"] == "ray"
    assert results(out) == results(tmp_path / "ref")
    again = read_summary(out)
    assert again["requests"] == reference["requests"] == 80
    assert again["cost_usd"] == pytest.approx(reference["cost_usd"])
    assert stats["duplicate_replies"] <= again["orphaned_requests"] <= 8


def _toml(path) -> dict:
    data = tomllib.loads(path.read_text())
    data["generate"]["tasks"] = str(path.parent / data["generate"]["tasks"])
    return data


def test_in_process_backends_are_refused_on_ray_with_a_clear_error(tmp_path):
    from selfplay.core.errors import UserError
    from selfplay.pipeline.executors import open_executor

    cfg = config(tmp_path, "http://127.0.0.1:9/v1", executor={"kind": "ray"})
    cfg.model.backend = "local"
    with pytest.raises(UserError, match="backend must be"):
        open_executor(cfg, tmp_path)
