"""The loop's sampling goes through the one sampler (`selfplay.pipeline.sample.TaskSampler` via `sample_tasks`):
a non-direct workflow (feedback, self_refine) with adaptive K draws the batches the adaptive rule asks for, stores
each wave whole, verifies it as it lands, and a second call on the same store (a resumed run) sends nothing.

The policy here is a scripted chat LLM (labelled as such: it answers by a fixed rule from the seed, so the counts
can be computed by hand); the store, the workflows, the verifier and adaptive K are the real ones.
"""

from __future__ import annotations

import asyncio
import random
import re
from types import SimpleNamespace

from agents.llm.types import ChatResult, Choice, SamplingParams, Usage
from agents.workflows.adaptive import AdaptiveK, next_batch
from selfplay.pipeline import sample as sampling
from selfplay.pipeline.sample import SamplingSpec, sample_tasks
from selfplay.core.store import RunStore
from selfplay.tasks.task import Task


class ScriptedLLM:
    """A fake policy (not a model): sample j of a request with seed s is right iff the task's rule says so."""

    supports_n = True
    model = "scripted"

    def __init__(self, right) -> None:
        self.right = right  # (task question, seed + j) -> bool
        self.requests = 0
        self.rows = 0

    async def chat(self, messages, params: SamplingParams, *, tools=None, sample_offset=0) -> ChatResult:
        self.requests += 1
        self.rows += params.n
        question = messages[0]["content"]
        critic = question.startswith("Review")
        a, b = (int(x) for x in re.search(r"What is (\d+)\+(\d+)\?", question).groups())
        choices = []
        for j in range(params.n):
            good = self.right(question, (params.seed or 0) + j)
            text = "No errors. VERDICT: CORRECT" if critic else f"The answer is {a + b if good else a + b + 1}."
            choices.append(Choice(index=j, message={"role": "assistant", "content": text}, finish_reason="stop",
                                  token_ids=list(text.encode()) + [2], logprobs=[-0.5] * (len(text) + 1)))
        return ChatResult(model=self.model, choices=choices, usage=Usage(prompt_tokens=7, completion_tokens=9 * params.n))


TASKS = [Task(id=f"t{i}", prompt=f"What is {i}+{i + 1}?", answer=str(2 * i + 1)) for i in range(6)]
# Task t0 is always right, t1..t2 right for one sample in four, t3..t5 never: adaptive K gives the hard-but-solvable
# ones more samples, stops the easy one at k and the hopeless ones at k.
RULES = {0: lambda s: True, 1: lambda s: s % 4 == 0, 2: lambda s: s % 4 == 1}


def right(question: str, seed: int) -> bool:
    i = int(re.search(r"What is (\d+)\+", question).group(1))
    return RULES.get(i, lambda s: False)(seed)


def seed_of(task: Task) -> int:
    return random.Random(f"7:1:{task.id}").randrange(2 ** 31)


def sample(store: RunStore, llm: ScriptedLLM, workflow: str, options: dict, adaptive) -> bool:
    def params_for(task: Task) -> SamplingParams:
        return SamplingParams(max_tokens=16, temperature=1.0, seed=seed_of(task))

    async def go() -> bool:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=2) as pool:
            adaptive_keys = vars(adaptive) if adaptive is not None else {}
            spec = SamplingSpec(workflow=workflow, k=4, workflow_options=options, verifier="math", **adaptive_keys)
            return await sample_tasks(
                llm, store, 1, TASKS, spec, label=workflow, params_for=params_for, chunk_size=3,
                check_for=_check_for(pool) if workflow == "feedback" else None, executor=pool)
    return asyncio.run(go())


def _check_for(pool):
    from agents.workflows.common import CheckResult
    from selfplay.pipeline.verify import answer_only, get_check, run_check

    check = get_check("math")

    def check_for(task: Task):
        async def feedback_check(answer: str) -> CheckResult:
            verdict = await run_check(check, answer_only(task, answer), task, pool)
            return CheckResult(passed=verdict.passed, reason=verdict.reason, error=verdict.error)
        return feedback_check
    return check_for


ADAPTIVE = SimpleNamespace(k_max=12, stop_after_verified=None, batch=4, low_pass_rate=0.5)


def test_self_refine_with_adaptive_k_draws_what_the_rule_asks_and_a_rerun_sends_nothing(tmp_path):
    llm = ScriptedLLM(right)
    options = {"max_rounds": 1}  # the policy critiques itself (the script always accepts)
    with RunStore(tmp_path) as store:
        assert sample(store, llm, "self_refine", options, ADAPTIVE)
        records = [r for r in store.iter_candidates(1) if r.workflow == "self_refine"]
        sent = llm.requests
        verdicts = {(v["task_id"], v["sample_index"]) for v in _verdicts(store)}
    per_task = {t.id: sorted(r.sample_index for r in records if r.task_id == t.id) for t in TASKS}
    expected = _expected_counts(lambda t, idx, seed: right(t.prompt, seed))
    assert {t: len(v) for t, v in per_task.items()} == expected
    assert expected["t0"] == 4 and expected["t1"] > 4 and expected["t3"] == 4  # adaptive K did adapt
    assert all(v == list(range(len(v))) for v in per_task.values())
    assert len(verdicts) == len(records)  # verified as the waves landed
    assert all(r.generator == "self_refine" and r.turns == 1 and r.metadata["critiques"] for r in records)
    assert all(r.completion_token_ids == list(r.final_answer.encode()) + [2] for r in records)
    llm2 = ScriptedLLM(right)
    with RunStore(tmp_path) as store:  # the same call again (a resumed run): everything is reused
        assert sample(store, llm2, "self_refine", options, ADAPTIVE)
        assert [r for r in store.iter_candidates(1) if r.workflow == "self_refine"] == records
    assert llm2.requests == 0 and sent > 0


def test_feedback_with_adaptive_k_retries_on_the_verifiers_reason(tmp_path):
    llm = ScriptedLLM(right)
    with RunStore(tmp_path) as store:
        assert sample(store, llm, "feedback", {"max_attempts": 2}, ADAPTIVE)
        records = [r for r in store.iter_candidates(1) if r.workflow == "feedback"]
    wrong_first = [r for r in records if not r.metadata["checks"][0]["passed"]]
    assert wrong_first and all(r.turns == 2 and len(r.metadata["checks"]) == 2 for r in wrong_first)
    # the ids are those of the LAST assistant turn (the retry), not of the first answer
    assert all(r.completion_token_ids == list(r.messages[-1]["content"].encode()) + [2] for r in records)
    assert all(r.messages[-1]["role"] == "assistant" for r in records)
    counts = {t.id: sum(1 for r in records if r.task_id == t.id) for t in TASKS}
    assert counts["t0"] == 4 and counts["t3"] == 4 and counts["t1"] > 4


def test_fixed_k_without_adaptive_settings_is_one_wave_per_chunk(tmp_path):
    llm = ScriptedLLM(right)
    with RunStore(tmp_path) as store:
        assert sample(store, llm, "direct", {}, None)
        records = list(store.iter_candidates(1))
        assert not _verdicts(store)  # no adaptive K: the loop verifies afterwards, not here
    assert len(records) == 6 * 4 and llm.requests == 6 and llm.rows == 24


def _verdicts(store: RunStore) -> list[dict]:
    return [{"task_id": t, "sample_index": i} for (t, i) in
            store._read("SELECT task_id, sample_index FROM verdicts WHERE round = 1", ())]


def _expected_counts(passes) -> dict[str, int]:
    """Hand-replay of adaptive K per task: batch b of a task starts at index i with seed derive_seed(...) (the
    workflows' convention for batches after the first), sample j of it passes by the task's rule."""
    from agents.workflows.common import derive_seed

    settings = AdaptiveK(k=4, k_max=12, batch=4, low_pass_rate=0.5)
    out = {}
    for task in TASKS:
        sampled = passed = 0
        while (n := next_batch(sampled, passed, settings)) > 0:
            base = seed_of(task) if sampled == 0 else derive_seed(seed_of(task), sampled, 0)
            passed += sum(1 for j in range(n) if passes(task, sampled + j, base + j))
            sampled += n
        out[task.id] = sampled
    return out


def test_selfplay_run_with_feedback_and_adaptive_k_on_the_local_policy(tmp_path):
    """End to end on the micro model: the loop's config takes the adaptive keys and the feedback workflow, and the
    candidates it stores carry the local backend's sampled ids (which decode to the last turn's text)."""
    import json

    from tests.test_cli_run import rounds_of, selfplay, write_config
    from tests.tiny_model import tiny_pair

    path = write_config(tmp_path)
    text = path.read_text().replace("seed = 5", 'seed = 5\nworkflow = "feedback"\nworkflow_options = { max_attempts = 2 }'
                                                "\nk_max = 8\nstop_after_verified = 1")
    path.write_text(text.replace("n_train = 16", "n_train = 4").replace("rounds = 2", "rounds = 1"))
    result = selfplay("run", "--config", str(path), "--out", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == 0, result.stderr
    rounds = rounds_of(tmp_path / "out")
    assert [r["round"] for r in rounds] == [0, 1] and rounds[1]["samples"] >= 4 * 4
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["generate"]["k_max"] == 8 and config["generate"]["stop_after_verified"] == 1
    _, tokenizer = tiny_pair()
    records = [json.loads(line) for line in (tmp_path / "out" / "candidates.jsonl").read_text().splitlines()]
    feedback = [r for r in records if r["workflow"] == "feedback"]
    assert feedback and all(r["completion_token_ids"] for r in feedback)
    for r in feedback:
        assert tokenizer.decode(r["completion_token_ids"], skip_special_tokens=True).startswith(r["messages"][-1]["content"])
        assert len(r["completion_logprobs"]) == len(r["completion_token_ids"])


def test_a_run_killed_between_waves_resumes_to_the_same_candidates_without_redrawing(tmp_path, monkeypatch):
    options = {"max_rounds": 1}
    with RunStore(tmp_path / "whole") as store:
        whole_llm = ScriptedLLM(right)
        assert sample(store, whole_llm, "self_refine", options, ADAPTIVE)
        uninterrupted = list(store.iter_candidates(1))

    class Killed(Exception):
        pass

    waves = []

    def crash_after_second_wave(name: str) -> None:
        waves.append(name)
        if len(waves) == 2:
            raise Killed(name)  # the wave is stored; the process "dies" before the next one is planned

    killed_llm = ScriptedLLM(right)
    with monkeypatch.context() as patch:
        patch.setattr(sampling, "crash_point", crash_after_second_wave)
        with RunStore(tmp_path / "resumed") as store:
            try:
                sample(store, killed_llm, "self_refine", options, ADAPTIVE)
            except Killed:
                pass
            stored_at_kill = len(list(store.iter_candidates(1)))
    assert waves == ["round1:self_refine:chunk"] * 2 and 0 < stored_at_kill < len(uninterrupted)
    resumed_llm = ScriptedLLM(right)
    with RunStore(tmp_path / "resumed") as store:
        assert sample(store, resumed_llm, "self_refine", options, ADAPTIVE)
        resumed = list(store.iter_candidates(1))
    assert resumed == uninterrupted
    assert killed_llm.requests + resumed_llm.requests == whole_llm.requests  # the stored waves were not redrawn


class CodingLLM(ScriptedLLM):
    """A fake policy (not a model): first writes a python block that prints a+b, then answers from its output."""

    async def chat(self, messages, params: SamplingParams, *, tools=None, sample_offset=0) -> ChatResult:
        self.requests += 1
        last = messages[-1]["content"]
        seen = re.search(r"```output\n(-?\d+)", last)
        if seen:
            text = f"Final answer: \\boxed{{{seen.group(1)}}}"
        else:
            a, b = (int(x) for x in re.search(r"What is (\d+)\+(\d+)\?", last).groups())
            text = f"```python\nprint({a} + {b})\n```"
        choices = [Choice(index=j, message={"role": "assistant", "content": text}, finish_reason="stop",
                          token_ids=list(text.encode()) + [2]) for j in range(params.n)]
        return ChatResult(model=self.model, choices=choices, usage=Usage(prompt_tokens=7, completion_tokens=9))


def test_tool_use_runs_in_the_loop_with_the_code_sandbox(tmp_path):
    """The loop's sampling gets the sandbox tool for `tool_use` (as `selfplay generate` does): the code runs."""
    from concurrent.futures import ThreadPoolExecutor

    llm = CodingLLM(right)
    tasks = TASKS[:2]

    async def go() -> bool:
        with ThreadPoolExecutor(max_workers=2) as pool:
            spec = SamplingSpec(workflow="tool_use", k=2, workflow_options={"mode": "fenced"})
            return await sample_tasks(
                llm, store, 1, tasks, spec, label="tool_use",
                params_for=lambda t: SamplingParams(max_tokens=32, seed=seed_of(t)), executor=pool)

    with RunStore(tmp_path) as store:
        assert asyncio.run(go())
        records = list(store.iter_candidates(1))
    assert len(records) == 4
    for r in records:
        task = next(t for t in tasks if t.id == r.task_id)
        assert r.tool_calls == 1 and r.tool_errors == 0, r
        assert r.final_answer == f"Final answer: \\boxed{{{task.answer}}}"  # the sandbox printed the sum
        assert r.completion_token_ids == list(r.final_answer.encode()) + [2]
