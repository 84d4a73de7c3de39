"""The local backend on a tiny random Llama: shared prefill, batching, sampling semantics, usage, cost, errors."""

import asyncio

import pytest
import torch

from agents.llm.local import LocalBackend
from agents.llm.metered import MeteredLLM
from agents.llm.sampling import sample_k
from agents.llm.types import LLMError, SamplingParams
from agents.money.ledger import BudgetLedger
from tests.tiny_model import chat_ids, greedy_ids, tiny_pair, use_one_thread

use_one_thread()
PROMPTS = [[{"role": "user", "content": text}] for text in ("hi", "what is 2+2?", "name three primes, please")]


@pytest.fixture(scope="module")
def pair():
    return tiny_pair()


def backend(pair, **kw):
    model, tokenizer = pair
    return LocalBackend(model, tokenizer, name="tiny", **kw)


def texts(result):
    return [c.text for c in result.choices]


async def test_greedy_with_shared_prefill_equals_plain_generate_across_a_batch(pair):
    model, tokenizer = pair
    llm = backend(pair)
    greedy = SamplingParams(max_tokens=12, temperature=0, n=2)
    results = await asyncio.gather(*[llm.chat(m, greedy) for m in PROMPTS])
    assert llm._batcher.batches_run == 1  # the three concurrent calls ran as one left-padded batch
    for messages, result in zip(PROMPTS, results):
        reference = greedy_ids(model, chat_ids(tokenizer, messages), 12, tokenizer.eos_token_id)
        expected = tokenizer.decode(reference, skip_special_tokens=True)
        assert texts(result) == [expected, expected]
        assert result.usage.prompt_tokens == len(chat_ids(tokenizer, messages))
        assert result.usage.completion_tokens == 2 * len(reference)
    await llm.aclose()


async def test_prompt_is_prefilled_once_then_expanded_to_n_rows(pair):
    model, _ = pair
    llm = backend(pair)
    batch_sizes = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: batch_sizes.append(kw["input_ids"].shape),
                                           with_kwargs=True)
    try:
        await llm.chat(PROMPTS[2], SamplingParams(max_tokens=3, temperature=1.0, n=8, seed=0))
    finally:
        hook.remove()
    prefill, *decode = batch_sizes
    assert prefill[0] == 1 and prefill[1] > 10  # one row holds the whole prompt
    assert decode[0] == (8, 1)  # then one token per step for the 8 rows
    assert all(shape[1] == 1 and shape[0] <= 8 for shape in decode)
    await llm.aclose()


async def test_samples_differ_at_temperature_one_and_repeat_with_a_seed(pair):
    llm = backend(pair)
    params = SamplingParams(max_tokens=10, temperature=1.0, n=4, seed=7)
    first, again = await llm.chat(PROMPTS[0], params), await llm.chat(PROMPTS[0], params)
    assert len(set(texts(first))) == 4
    assert texts(first) == texts(again)
    unseeded = [texts(await llm.chat(PROMPTS[0], params.with_(seed=None))) for _ in range(2)]
    assert unseeded[0] != unseeded[1]
    await llm.aclose()


async def test_row_j_of_a_seeded_call_equals_a_single_call_with_seed_plus_j(pair):
    llm = backend(pair)
    params = SamplingParams(max_tokens=10, temperature=1.0, seed=100)
    rows = texts(await llm.chat(PROMPTS[1], params.with_(n=3)))
    singles = [texts(await llm.chat(PROMPTS[1], params.with_(seed=100 + j)))[0] for j in range(3)]
    assert rows == singles
    llm.supports_n = False  # sample_k's top-up path: n=1 requests with seed + offset give the same samples
    topped_up = await sample_k(llm, PROMPTS[1], params, 3)
    assert [c.text for r in topped_up for c in r.choices] == rows
    await llm.aclose()


async def test_tiny_top_p_is_greedy(pair):
    llm = backend(pair)
    greedy = texts(await llm.chat(PROMPTS[1], SamplingParams(max_tokens=10, temperature=0)))
    nucleus = texts(await llm.chat(PROMPTS[1], SamplingParams(max_tokens=10, temperature=1.5, top_p=1e-6, n=3, seed=1)))
    assert nucleus == greedy * 3
    await llm.aclose()


async def test_stop_string_cuts_the_text_and_ends_the_row(pair):
    llm = backend(pair)
    full = texts(await llm.chat(PROMPTS[1], SamplingParams(max_tokens=12, temperature=0)))[0]
    stop = full[5:7]
    cut = await llm.chat(PROMPTS[1], SamplingParams(max_tokens=12, temperature=0, stop=["never-there", stop]))
    assert cut.choices[0].text == full[:full.find(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < 12
    await llm.aclose()


async def test_eos_ends_a_row_with_finish_stop_and_counts_the_eos_token(pair):
    model, tokenizer = pair
    first = greedy_ids(model, chat_ids(tokenizer, PROMPTS[0]), 1, tokenizer.eos_token_id)[0]
    llm = backend(pair, eos_token_ids=[first])  # pretend the first greedy token is eos
    result = await llm.chat(PROMPTS[0], SamplingParams(max_tokens=8, temperature=0, n=2))
    assert [(c.text, c.finish_reason) for c in result.choices] == [("", "stop")] * 2
    assert result.usage.completion_tokens == 2
    length = await backend(pair).chat(PROMPTS[0], SamplingParams(max_tokens=3, temperature=0))
    assert length.choices[0].finish_reason == "length" and length.usage.completion_tokens == 3


async def test_cost_is_hourly_price_times_measured_batch_time_split_by_tokens(pair):
    llm = backend(pair, hourly_usd=3600.0)  # $1 per second: cost reads as seconds
    params = SamplingParams(max_tokens=6, temperature=1.0, n=4, seed=3)
    results = await asyncio.gather(*[llm.chat(m, params) for m in PROMPTS])
    assert llm._batcher.batches_run == 1
    assert sum(r.cost_usd for r in results) == pytest.approx(llm.meter.total_seconds, rel=1e-6)
    shares = [r.cost_usd / r.usage.total_tokens for r in results]
    assert max(shares) == pytest.approx(min(shares), rel=1e-6)
    for messages, result in zip(PROMPTS, results):
        assert 0 < result.cost_usd <= llm.worst_case_usd(messages, params)
    free = await backend(pair).chat(PROMPTS[0], params)
    assert free.cost_usd == 0.0


async def test_metered_llm_with_price_none_reserves_and_settles_hardware_cost(pair):
    llm = backend(pair, hourly_usd=10.0)
    ledger = BudgetLedger()
    metered = MeteredLLM(llm, price=None, ledger=ledger)
    result = await metered.chat(PROMPTS[0], SamplingParams(max_tokens=5, n=2, seed=1))
    assert ledger.totals.spent_usd == pytest.approx(result.cost_usd) and result.cost_usd > 0
    assert ledger.in_flight_usd == pytest.approx(0.0)


async def test_bad_requests_are_clear_llm_errors(pair):
    llm = backend(pair)
    with pytest.raises(LLMError) as too_long:
        await llm.chat(PROMPTS[0], SamplingParams(max_tokens=5000))
    assert too_long.value.kind == "bad_request" and "context" in too_long.value.message
    with pytest.raises(LLMError) as empty:
        await llm.chat([], SamplingParams(max_tokens=5))
    assert empty.value.kind == "bad_request"
    with pytest.raises(FileNotFoundError, match="never from a hub"):
        LocalBackend.from_path("/no/such/checkpoint")


async def test_a_cancelled_caller_does_not_break_the_others(pair):
    llm = backend(pair)
    params = SamplingParams(max_tokens=4, temperature=0)
    doomed = asyncio.ensure_future(llm.chat(PROMPTS[0], params))
    survivor = asyncio.ensure_future(llm.chat(PROMPTS[1], params))
    await asyncio.sleep(0)
    doomed.cancel()
    assert (await survivor).choices[0].finish_reason in ("stop", "length")
    await llm.aclose()


def test_sampler_unit_greedy_and_top_p_by_hand():
    from agents.llm.local_sampling import sample_next

    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]))
    temps = torch.tensor([0.0, 1.0, 1.0])
    top_p = torch.tensor([1.0, 1.0, 0.6])
    # row 1: u = 0.85 falls in the third bucket of [0.5, 0.8, 1.0]; row 2 keeps {0.5, 0.3}: 0.85 * 0.8 -> second
    picked = sample_next(logits, temps, top_p, torch.tensor([0.99, 0.85, 0.85]))
    assert picked.tolist() == [0, 2, 1]


async def test_direct_workflow_runs_unchanged_on_the_metered_local_backend(pair):
    from agents.workflows.direct import run_direct

    llm = MeteredLLM(backend(pair, hourly_usd=1.0), price=None, ledger=BudgetLedger())
    trajectories = await run_direct(llm, "t1", PROMPTS[1], SamplingParams(max_tokens=6, seed=0), k=4)
    assert [t.sample_index for t in trajectories] == [0, 1, 2, 3]
    assert all(t.error is None and t.cost_usd > 0 for t in trajectories)
    assert sum(t.requests for t in trajectories) == 1  # K samples from one engine call
