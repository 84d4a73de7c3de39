"""The generate summary's running tally equals the figures recomputed from every stored candidate.

The summary no longer reads all candidates back at the end of a job; these tests recompute the
per-candidate figures (per workflow, dedup, verified) the slow way, from the run store, and compare:
after a fresh run, and after a resumed run that stops before it reaches any task (so every figure
comes from what the earlier session stored).
"""

from __future__ import annotations

import asyncio
import json

import pytest

from agents.workflows.dedup import dedup_report
from agents.workflows.stats import workflow_stats
from selfplay.config.generate import GenerateConfig
from selfplay.jobs.generate import GenerateJob
from selfplay.core.store import RunStore
from selfplay.servers.testing import MockServer


def _config(tmp_path, base_url: str, usd: float) -> GenerateConfig:
    tasks = tmp_path / "tasks.jsonl"
    with tasks.open("w") as handle:
        for i in range(24):
            prompt, answer = (f"What is {i} * 3?", 3 * i) if i % 2 else (f"What is {i} + 3?", i + 3)
            handle.write(json.dumps({"id": f"t{i}", "prompt": prompt, "answer": str(answer)}) + "\n")
    return GenerateConfig.model_validate({
        "model": {"name": "mock-model", "base_url": base_url, "max_attempts": 8},
        "generate": {"tasks": str(tasks), "k": 4, "max_tokens": 64, "concurrency": 8, "verifier": "math",
                     "k_max": 8, "stop_after_verified": 3, "temperature": 1.0},
        "budget": {"usd": usd}, "prices": {"mock-model": {"input": 1.0, "output": 2.0}}})


def _from_store(out) -> dict:
    """The per-candidate figures as the summary computed them before the tally: every candidate decoded."""
    with RunStore(out) as store:
        records = list(store.iter_candidates(0))
        verdicts = store.verdicts_for(0, "math")
    views = records
    keys = [r.key for r in records]
    passed = [None if verdicts.get(k) is None or verdicts[k].get("error") else bool(verdicts[k]["passed"])
              for k in keys]
    ok = [r for r in records if r.ok]
    return {"candidates": len(ok), "verified": sum(1 for p in passed if p),
            "verifier_errors": sum(1 for r, k in zip(records, keys) if r.ok
                                   and verdicts.get(k, {}).get("error")),
            "per_workflow": {n: s.model_dump(mode="json") for n, s in workflow_stats(views, passed).items()},
            "dedup": dedup_report(views).model_dump(mode="json")}


def _figures(summary: dict) -> dict:
    return {key: summary[key] for key in ("candidates", "verified", "verifier_errors", "per_workflow", "dedup")}


def _same(a: dict, b: dict) -> bool:
    """Equal figures; money sums may differ in the last bit (candidates are added in another order)."""
    flat = {**a, "per_workflow": None}, {**b, "per_workflow": None}
    return (flat[0] == flat[1] and a["per_workflow"].keys() == b["per_workflow"].keys()
            and all(_numbers(a["per_workflow"][k]) == pytest.approx(_numbers(b["per_workflow"][k]), rel=1e-12)
                    and a["per_workflow"][k]["workflow"] == b["per_workflow"][k]["workflow"]
                    for k in a["per_workflow"]))


def _numbers(stats: dict) -> dict:
    return {key: value for key, value in stats.items() if key != "workflow"}


def test_tally_equals_a_full_read_of_the_store_fresh_and_resumed_without_reaching_a_task(tmp_path):
    out = tmp_path / "out"
    with MockServer(seed=3, faults={"500": 0.1}) as server:
        first = asyncio.run(GenerateJob(_config(tmp_path, server.base_url, 10.0), out, show_progress=False).run())
        assert first["stopped_reason"] == "done" and first["candidates"] > 24 * 4
        assert first["dedup"]["exact_duplicates"] > 0 and 0 < first["verified"] < first["candidates"]
        assert _same(_figures(first), _from_store(out))

        # a cap below what was spent: the resumed session starts no task, every figure comes from the store
        again = asyncio.run(GenerateJob(_config(tmp_path, server.base_url, first["cost_usd"] / 2), out,
                                        show_progress=False).run())
    assert again["stopped_reason"] == "budget" and again["tasks_complete"] == 0
    assert _same(_figures(again), _figures(first))
