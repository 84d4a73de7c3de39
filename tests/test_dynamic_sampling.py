"""GRPO's dynamic sampling (DAPO) on a hand-made batch: which groups are kept, how many samples are drawn and priced.

The policy is a scripted backend (labelled as such, not a model): sample j of task T is right iff j < PASSES[T], so
which groups have mixed rewards is known by hand. The round context, the sampler, the store, the ledger, the math
verifier and the selection are the real ones; `_top_up` is what each GRPO iteration runs after sampling its slice.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from agents.llm.types import ChatResult, Choice, SamplingParams, Usage
from agents.money.ledger import BudgetLedger
from selfplay.config.run import RunConfig, check_run_config
from selfplay.core.store import RunStore
from selfplay.jobs.algorithms import get as get_algorithm
from selfplay.jobs.algorithms.grpo import _top_up, topup_limits, topup_reserve
from selfplay.jobs.demo import demo_config
from selfplay.jobs.round import RoundContext
from selfplay.pipeline.select import topup_tasks
from selfplay.tasks.loop import LoopTasks
from selfplay.tasks.task import Task

USD_PER_SAMPLE = 0.001
K = 4


class ScriptedBackend:
    """A fake policy backend (not a model): sample j of a task is right iff j < its PASSES; $0.001 per sample."""

    supports_n = True
    model = "scripted"

    def __init__(self, passes: dict[str, int], tasks: list[Task]) -> None:
        self.passes, self.by_prompt = passes, {t.prompt: t for t in tasks}
        self.samples = 0

    async def chat(self, messages, params: SamplingParams, *, tools=None, sample_offset=0) -> ChatResult:
        task = self.by_prompt[messages[-1]["content"]]
        a, b = (int(x) for x in re.search(r"(\d+)\+(\d+)", task.prompt).groups())
        choices = []
        for j in range(params.n):
            text = f"The answer is {a + b if sample_offset + j < self.passes.get(task.id, 0) else a + b + 1}."
            choices.append(Choice(index=j, message={"role": "assistant", "content": text}, finish_reason="stop"))
        self.samples += params.n
        return ChatResult(model=self.model, choices=choices, cost_usd=USD_PER_SAMPLE * params.n,
                          usage=Usage(prompt_tokens=7, completion_tokens=5 * params.n))

    def worst_case_usd(self, messages, params: SamplingParams) -> float:
        return USD_PER_SAMPLE * params.n


def make_tasks(prefix: str, n: int, start: int) -> list[Task]:
    return [Task(id=f"{prefix}{i}", prompt=f"What is {start + i}+{start + i + 1}?", answer=str(2 * (start + i) + 1))
            for i in range(n)]


def config(signal_target: float, signal_max_extra: float, per_round: int | None = None) -> RunConfig:
    values = demo_config(7, quick=True).model_dump(mode="json", exclude_unset=True)
    values["generate"]["k"] = K
    values["select"] = {}
    values["train"] = {"algorithm": "grpo", "signal_target": signal_target, "signal_max_extra": signal_max_extra}
    if per_round:
        values["tasks"]["per_round"] = per_round
    return RunConfig.model_validate(values)


def context(tmp_path, cfg: RunConfig, tasks: LoopTasks, backend: ScriptedBackend, store: RunStore,
            ledger: BudgetLedger, pool) -> RoundContext:
    async def serve():
        return backend

    job = SimpleNamespace(config=cfg, dir=tmp_path, phase=lambda *a, **k: (lambda *a, **k: None), say=print)
    policy = SimpleNamespace(serve=serve, request_cache=lambda store: None)
    return RoundContext(job, store, ledger, policy, tasks, pool)


def run_iteration(tmp_path, cfg, slice_, reserve, passes):
    """Sample the slice as an iteration does, then top up; returns (rows, drawn, extra, backend, ledger, store)."""
    tasks = LoopTasks(train=slice_ + reserve, eval=make_tasks("e", 2, 500))
    backend = ScriptedBackend(passes, tasks.train)
    ledger = BudgetLedger()
    grpo = get_algorithm("grpo")

    async def go():
        with ThreadPoolExecutor(max_workers=2) as pool, RunStore(tmp_path / "run") as store:
            ctx = context(tmp_path, cfg, tasks, backend, store, ledger, pool)
            await ctx.sample_training(1, slice_, "slice")
            records = list(store.iter_candidates(1, cfg.generate.workflow))
            items = await ctx.verify_training(1, records)
            rows, _ = ctx.training_rows(grpo, items)
            spent_slice = ledger.totals.spent_usd
            rows, drawn, extra = await _top_up(grpo, ctx, 1, "iteration 1/1", slice_, rows, records, items, reserve)
            stored = len(list(store.iter_candidates(1, cfg.generate.workflow)))
            return rows, drawn, extra, spent_slice, stored, len(records)
    return (*asyncio.run(go()), backend, ledger)


def kept_tasks(rows, tasks: list[Task]) -> set[str]:
    by_prompt = {t.prompt: t.id for t in tasks}
    found = set()
    for row in rows:
        prompt = row["prompt"] if isinstance(row["prompt"], str) else row["prompt"][-1]["content"]
        found.add(by_prompt[prompt])
    return found


SLICE = make_tasks("s", 10, 10)       # s0, s1 mixed; s2..s5 all right; s6..s9 all wrong
RESERVE = make_tasks("r", 30, 100)


def test_tops_up_until_the_target_and_prices_every_extra_sample(tmp_path):
    # target = ceil(0.4 x 10) = 4 mixed groups; the slice has 2 (share 0.2): wave 1 = ceil(2 / 0.2) = 10 tasks (r0..r9,
    # r3 mixed) -> 3 of 20; wave 2 = ceil(1 / 0.15) = 7 tasks (r10..r16, r12 mixed) -> 4: stop. Cap: 2.0 x 40 = 80.
    passes = {"s0": 2, "s1": 1, **{f"s{i}": K for i in range(2, 6)}, "r3": 3, "r12": 1, "r20": 2}
    rows, drawn, extra, spent_slice, stored, records, backend, ledger = run_iteration(
        tmp_path, config(0.4, 2.0), SLICE, RESERVE, passes)
    assert [t.id for t in drawn] == [f"r{i}" for i in range(17)]
    assert kept_tasks(rows, SLICE + RESERVE) == {"s0", "s1", "r3", "r12"}   # r20 was never drawn
    assert extra == 17 * K == 68
    assert records == stored == 10 * K + 68                                 # the records list holds the extra ones
    assert backend.samples == 108                                          # drawn once each
    assert spent_slice == pytest.approx(40 * USD_PER_SAMPLE)
    assert ledger.totals.spent_usd == pytest.approx(108 * USD_PER_SAMPLE)  # the extra samples are priced


def test_stops_at_the_cap_on_extra_samples(tmp_path):
    # no mixed group in the reserve: wave 1 = 10 tasks (cap 80 samples = 20 tasks), wave 2 = min(ceil(2 / 0.125),
    # 10 tasks left in the cap) = 10; then the cap is spent: 80 extra samples, the two slice groups kept
    passes = {"s0": 2, "s1": 1}
    rows, drawn, extra, _, _, _, backend, ledger = run_iteration(tmp_path, config(0.4, 2.0), SLICE, RESERVE, passes)
    assert len(drawn) == 20 and extra == 80 and backend.samples == 120
    assert kept_tasks(rows, SLICE + RESERVE) == {"s0", "s1"}
    assert ledger.totals.spent_usd == pytest.approx(120 * USD_PER_SAMPLE)


def test_off_or_already_enough_draws_nothing(tmp_path):
    passes = {"s0": 2, "s1": 1}
    rows, drawn, extra, _, _, _, backend, _ = run_iteration(tmp_path, config(0.0, 2.0), SLICE, RESERVE, passes)
    assert (drawn, extra, backend.samples, len(rows)) == ([], 0, 40, 2)
    rows, drawn, extra, _, _, _, backend, _ = run_iteration(tmp_path / "b", config(0.2, 2.0), SLICE, RESERVE, passes)
    assert (drawn, extra, backend.samples, len(rows)) == ([], 0, 40, 2)   # 2 of 10 already meet 0.2 x 10


def test_an_empty_reserve_stops(tmp_path):
    passes = {"s0": 2}
    rows, drawn, extra, _, _, _, backend, _ = run_iteration(tmp_path, config(0.4, 2.0), SLICE, RESERVE[:3], passes)
    assert len(drawn) == 3 and extra == 12 and backend.samples == 52 and len(rows) == 1


def test_topup_tasks_plan():
    assert topup_tasks(have=2, target=4, drawn_tasks=10, extra_samples=0, max_extra=80, k=4, left=100) == 10
    assert topup_tasks(have=0, target=4, drawn_tasks=10, extra_samples=0, max_extra=800, k=4, left=100) == 32  # 1/8
    assert topup_tasks(have=4, target=4, drawn_tasks=10, extra_samples=0, max_extra=80, k=4, left=100) == 0
    assert topup_tasks(have=0, target=4, drawn_tasks=10, extra_samples=78, max_extra=80, k=4, left=100) == 0
    assert topup_tasks(have=0, target=4, drawn_tasks=10, extra_samples=0, max_extra=80, k=4, left=5) == 5
    assert topup_limits(SimpleNamespace(signal_target=0.4, signal_max_extra=1.0), 100, 8) == (40, 800)


def test_the_reserve_is_the_tasks_outside_the_round_pool_in_a_seeded_order(tmp_path):
    cfg = config(0.4, 1.0, per_round=10)
    tasks = LoopTasks(train=make_tasks("t", 30, 10), eval=make_tasks("e", 2, 500))
    ctx = context(tmp_path, cfg, tasks, ScriptedBackend({}, tasks.train), None, BudgetLedger(), None)
    pool = {t.id for t in ctx.round_tasks(1)}
    reserve = topup_reserve(ctx, 1)
    assert len(reserve) == 20 and not pool & {t.id for t in reserve}
    assert [t.id for t in reserve] == [t.id for t in topup_reserve(ctx, 1)]       # the same on resume
    assert [t.id for t in reserve] != [t.id for t in topup_reserve(ctx, 2)] or pool != {t.id for t in ctx.round_tasks(2)}


def test_signal_keys_are_grpo_only():
    values = demo_config(7, quick=True).model_dump(mode="json", exclude_unset=True)
    values["train"]["signal_target"] = 0.5
    with pytest.raises(Exception, match="signal_target"):
        check_run_config(RunConfig.model_validate(values), "run.toml")
