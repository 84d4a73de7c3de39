"""`direct`: K samples in one n=K request, batches keyed apart, failures recorded as data."""

from agents.llm.types import LLMError, SamplingParams
from agents.workflows import run_workflow
from tests.test_workflow_fakes import ScriptedLLM, metered

PROMPT = [{"role": "user", "content": "What is 2+2?"}]


async def test_k_samples_share_one_request_and_split_usage():
    llm = ScriptedLLM(lambda m, c: ["Step 1: add.\nStep 2: \\boxed{4}", "\\boxed{5}", "\\boxed{4}"])
    out = await run_workflow("direct", llm, "t1", PROMPT, SamplingParams(seed=7), 3)
    assert len(llm.calls) == 1 and llm.calls[0].params.n == 3
    assert [t.sample_index for t in out] == [0, 1, 2]
    assert [t.final_answer for t in out] == ["Step 1: add.\nStep 2: \\boxed{4}", "\\boxed{5}", "\\boxed{4}"]
    assert out[0].steps == ["Step 1: add.", "Step 2: \\boxed{4}"]
    assert [t.requests for t in out] == [1, 0, 0]        # the one request is counted once
    assert all(t.usage.completion_tokens == 5 and t.turns == 1 and t.stop_reason == "final" for t in out)
    assert out[0].messages == [*PROMPT, {"role": "assistant", "content": out[0].final_answer}]


async def test_a_later_batch_is_not_served_the_first_batch_from_the_cache():
    inner = ScriptedLLM(lambda m, c: f"seed {c.params.seed} offset {c.sample_offset}")
    llm = metered(inner)
    first = await run_workflow("direct", llm, "t1", PROMPT, SamplingParams(seed=7), 2)
    second = await run_workflow("direct", llm, "t1", PROMPT, SamplingParams(seed=7), 2, first_index=2)
    assert len(inner.calls) == 2 and llm.cache_hits == 0
    assert [t.sample_index for t in second] == [2, 3]
    assert first[0].final_answer != second[0].final_answer
    again = await run_workflow("direct", llm, "t1", PROMPT, SamplingParams(seed=7), 2, first_index=2)
    assert len(inner.calls) == 2 and [t.final_answer for t in again] == [t.final_answer for t in second]
    assert all(t.cost_usd == 0 and t.cache_hits + t.requests <= 1 for t in again)


async def test_a_failed_request_becomes_k_errored_trajectories():
    llm = ScriptedLLM(lambda m, c: LLMError("server_error", "HTTP 503"))
    out = await run_workflow("direct", llm, "t1", "What is 2+2?", SamplingParams(), 2)
    assert [t.error for t in out] == ["server_error", "server_error"]
    assert all(t.messages == PROMPT and t.stop_reason == "error" and t.final_answer == "" for t in out)


async def test_no_n_support_falls_back_to_single_requests_with_distinct_seeds():
    llm = ScriptedLLM(lambda m, c: "x", supports_n=False)
    await run_workflow("direct", llm, "t1", PROMPT, SamplingParams(seed=1), 3)
    assert [c.params.n for c in llm.calls] == [1, 1, 1]
    assert len({c.params.seed for c in llm.calls}) == 3
