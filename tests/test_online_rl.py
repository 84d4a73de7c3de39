"""On-policy GRPO rounds (selfplay.jobs.algorithms.grpo): iterations alternate sample -> update with the weights they
produced, `kill -9` between (and inside) iterations resumes to the same results, and the round record carries
per-iteration metrics. The task is tiny on purpose: answer "1" (seed rows answer "1" or "2" at random), so a micro
model's groups have reward variance from the start and GRPO has something to learn."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from tests.test_cli_run import rounds_of, selfplay

CONFIG = """
[model]
name = "micro-llama"
backend = "local"

[local]
max_batch_rows = 64

[tasks]
train = "train.jsonl"
eval = "eval.jsonl"
seed_sft = "seed.jsonl"

[generate]
k = 4
max_tokens = 3
seed = 3

[train]
algorithm = "grpo"
iterations = 3
cold_start_steps = 30
settings = {{ lr = 3e-3, batch_size = 8, max_steps = {steps} }}

[eval]
k = 4

[loop]
rounds = {rounds}
require_improvement = false
"""


def write_run(tmp: Path, rounds: int = 2, steps: int = 6) -> Path:
    def tasks(name: str, n: int) -> None:
        rows = [{"id": f"{name}{i}", "prompt": f"pick {name} {i}", "answer": "1"} for i in range(n)]
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    tasks("train", 12)
    tasks("eval", 8)
    seed = [{"messages": [{"role": "user", "content": f"pick seed {i}"},
                          {"role": "assistant", "content": "12"[i % 2]}]} for i in range(16)]
    (tmp / "seed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in seed))
    path = tmp / "run.toml"
    path.write_text(CONFIG.format(rounds=rounds, steps=steps))
    return path


def fingerprint(model) -> str:
    digest = hashlib.sha256()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def test_each_iteration_samples_with_the_weights_the_previous_one_trained(tmp_path, monkeypatch):
    from selfplay.jobs import round as round_module
    from selfplay.jobs.algorithms import grpo as online_rl
    from selfplay.jobs.loop import RunJob
    from selfplay.pipeline.sample import EVAL
    from selfplay.config.run import load_run_config

    events = []
    sample, train = round_module.sample_tasks, online_rl.train_iteration

    async def spy_sample(llm, store, round_, tasks, spec, *, label, **kw):
        if label != EVAL:
            events.append(("sample", fingerprint(llm.inner.hf_model), [t.id for t in tasks]))
        return await sample(llm, store, round_, tasks, spec, label=label, **kw)

    def spy_train(algorithm, policy, rows, *args, **kw):
        before = fingerprint(policy.model)
        metrics = train(algorithm, policy, rows, *args, **kw)
        events.append(("train", before, fingerprint(policy.model)))
        return metrics

    monkeypatch.setattr(round_module, "sample_tasks", spy_sample)
    monkeypatch.setattr(online_rl, "train_iteration", spy_train)
    config = load_run_config(write_run(tmp_path, rounds=1))
    rounds = asyncio.run(RunJob(config, tmp_path / "out").run())

    kinds = [e[0] for e in events]
    assert kinds == ["sample", "train"] * 3, kinds  # 3 iterations, each: sample its slice, then update
    for (_, sampled_with, _), (_, trained_from, trained_to) in zip(events[0::2], events[1::2]):
        assert sampled_with == trained_from != trained_to  # trains the weights that sampled, and changes them
    assert events[2][1] == events[1][2] and events[4][1] == events[3][2]  # the next samples: the updated weights
    slices = [e[2] for e in events[0::2]]
    assert sorted(sum(slices, [])) == sorted(f"train{i}" for i in range(12)) and all(len(s) == 4 for s in slices)
    record = rounds[1]
    steps = [h["steps"] for h in record["online_rl"]]
    assert record["samples"] == 12 * 4 and record["train"]["steps"] == sum(steps) and record["train"]["iterations"] == 3
    assert all(1 <= s <= 2 for s in steps), steps  # max_steps = 6 split between 3 iterations (fewer on little data)


def test_round_record_has_per_iteration_metrics(tmp_path):
    from selfplay.jobs.loop import RunJob
    from selfplay.config.run import load_run_config

    rounds = asyncio.run(RunJob(load_run_config(write_run(tmp_path, rounds=1)), tmp_path / "out").run())
    history = rounds[1]["online_rl"]
    assert [h["iteration"] for h in history] == [0, 1, 2]
    for h in history:
        assert h["samples"] == 16 and 0 < h["reward_mean"] < 1 and h["length"] > 0
        for key in ("clip_fraction", "kl_to_sampler", "entropy", "logp_delta", "grad_norm"):
            assert isinstance(h[key], float), (key, h)
        assert 0 <= h["clip_fraction"] <= 1 and h["kl_to_sampler"] >= 0 and h["entropy"] > 0
    train = rounds[1]["train"]
    assert {"samples", "passed", "yield", "selection", "audit", "train"} <= set(rounds[1])
    assert train["reward_mean"] == pytest.approx(sum(h["reward_mean"] for h in history) / 3)
    checkpoints = sorted(p.name for p in (tmp_path / "out" / "checkpoints").iterdir())
    assert checkpoints == ["round-0", "round-1", "round-1.iter-2"]  # only the newest iteration is kept


CRASH_POINTS = ["round1:iter0:saved", "round1:iter1:generated", "round1:iter2:trained", "round2:iter1:generated"]


def comparable(rounds: list[dict]) -> list[dict]:
    keep = ("round", "eval_pass@1", "eval_pass@k", "samples", "passed", "selection", "online_rl")
    return [{k: r.get(k) for k in keep} for r in rounds]


def killed_and_resumed(tmp_path: Path, write, crash_points: list[str]) -> tuple[Path, list[dict]]:
    """An uninterrupted run (`ref/out`) and one killed at each crash point then resumed (`crash/out`), both from
    `write(dir) -> config path`; asserts the resumed records and each round's weights equal the reference's. Returns (crash out, ref rounds)."""
    (tmp_path / "ref").mkdir()
    (tmp_path / "crash").mkdir()
    reference = selfplay("run", str(write(tmp_path / "ref")), "--out", str(tmp_path / "ref" / "out"), "--no-progress")
    assert reference.returncode == 0, reference.stderr
    config = write(tmp_path / "crash")
    out = tmp_path / "crash" / "out"
    for crash_at in crash_points:
        killed = selfplay("run", str(config), "--out", str(out), "--no-progress", crash_at=crash_at)
        assert killed.returncode == -9, (crash_at, killed.stderr)
    resumed = selfplay("run", str(config), "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    expected = rounds_of(tmp_path / "ref" / "out")
    assert comparable(rounds_of(out)) == comparable(expected)
    for round_ in (1, 2):
        name = f"checkpoints/round-{round_}/model.safetensors"
        assert (out / name).read_bytes() == (tmp_path / "ref" / "out" / name).read_bytes()
    return out, expected


def test_kill_between_and_inside_iterations_resumes_to_an_identical_run(tmp_path):
    out, expected = killed_and_resumed(tmp_path, write_run, CRASH_POINTS)
    assert all(r["train"]["steps"] > 0 for r in expected[1:])  # the iterations really trained


def test_one_iteration_round_keeps_no_iteration_checkpoint_and_resumes_identically(tmp_path):
    """The default (`iterations` unset: one sampling per round) writes no per-iteration weights or optimizer state
    (the round's checkpoint is the only copy); a kill after training re-trains on the stored samples to the same
    weights."""
    def one_iteration(tmp: Path) -> Path:
        path = write_run(tmp)
        path.write_text(path.read_text().replace("iterations = 3\n", ""))
        return path

    out, expected = killed_and_resumed(tmp_path, one_iteration, ["round1:iter0:trained"])
    assert [h["iteration"] for h in expected[1]["online_rl"]] == [0] and expected[1]["train"]["steps"] > 0
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["round-0", "round-1", "round-2"]


def test_iterations_is_refused_outside_grpo(tmp_path):
    from selfplay.core.errors import UserError
    from selfplay.config.run import load_run_config

    path = write_run(tmp_path)
    path.write_text(path.read_text().replace('algorithm = "grpo"\n', ""))
    with pytest.raises(UserError, match="iterations"):
        load_run_config(path)
