"""The per-candidate fast paths of large-K sampling give exactly what the code they replaced gave (each reference
implementation is copied here as it was): maj@k's exact enumeration skipped when it would exceed its limit (counted
first instead of enumerated), a reply's choices parsed and renumbered, a candidate built without validation, and
Usage's equality (what `exclude_defaults` compares once per stored candidate); and the GC tuning of a streaming
process."""

from __future__ import annotations

import itertools
import json
import math
import random
from typing import Any

import pytest

from agents.llm import openai_backend, sampling
from agents.llm.types import ChatResult, Choice, Usage
from selfplay.core.candidate import Candidate
from selfplay.pipeline import metrics
from selfplay.pipeline.metrics import MAJ_CLASSES, _log_comb, _maj_monte_carlo, _ways_exceed, maj_at_k_of_classes
from selfplay.pipeline.stream import GC_YOUNG


# --- maj@k: the exact enumeration is skipped, not abandoned half-way --------------------------------------------
def reference_maj_at_k(classes, n: int, k: int, seed: int = 0, limit: int = metrics.MAJ_EXACT_LIMIT) -> float:
    """`maj_at_k_of_classes` before the count: enumerate up to `limit` compositions, else Monte-Carlo."""
    if k == 1:
        return sum(count for count, ok in classes if ok) / n
    correct = [count for count, ok in classes if ok and count]
    wrong = sorted((count for count, ok in classes if not ok and count), reverse=True)
    tail = sum(wrong[MAJ_CLASSES:])
    wrong = wrong[:MAJ_CLASSES]
    abstain = n - sum(correct) - sum(wrong) - tail
    if not correct:
        return 0.0
    if tail == 0:
        sizes = [*correct, *wrong, abstain]
        voting = len(correct) + len(wrong)
        log_all = _log_comb(n, k)
        total, seen = 0.0, 0
        x = [0] * len(sizes)

        def walk(i: int, left: int, log_weight: float) -> bool:
            nonlocal total, seen
            if i == len(sizes) - 1:
                if left > sizes[i]:
                    return True
                seen += 1
                if seen > limit:
                    return False
                x[i] = left
                top = max(x[:voting])
                if top:
                    winners = [j for j in range(voting) if x[j] == top]
                    chance = math.exp(log_weight + _log_comb(sizes[i], left) - log_all)
                    total += chance * sum(1 for j in winners if j < len(correct)) / len(winners)
                return True
            rest = sum(sizes[i + 1:])
            for take in range(max(0, left - rest), min(sizes[i], left) + 1):
                x[i] = take
                if not walk(i + 1, left - take, log_weight + _log_comb(sizes[i], take)):
                    return False
            return True

        if walk(0, k, 0.0):
            return min(1.0, total)
    return _maj_monte_carlo(correct, wrong, tail, abstain, k, seed)


def test_the_count_of_ways_matches_brute_force_at_every_limit():
    rng = random.Random(7)
    for _ in range(200):
        sizes = [rng.randint(0, 6) for _ in range(rng.randint(2, 5))]
        for k in range(sum(sizes) + 1):
            ways = sum(1 for xs in itertools.product(*[range(s + 1) for s in sizes]) if sum(xs) == k)
            for limit in (0, 1, 2, 5, 17, 100):
                assert _ways_exceed(sizes, k, limit) == (ways > limit), (sizes, k, limit, ways)


@pytest.mark.parametrize("limit", [30, 500, metrics.MAJ_EXACT_LIMIT])
def test_maj_at_k_equals_the_enumerate_then_give_up_reference(monkeypatch, limit):
    monkeypatch.setattr(metrics, "MAJ_EXACT_LIMIT", limit)
    cases = [([(3, True), (2, False), (1, False)], 8),           # short: exact at every k
             ([(30, True), (20, False)] + [(10, False)] * 11, 200),  # long: exact at small k, then Monte-Carlo
             ([(5, True), (5, True), (4, False), (1, False)], 15),  # two right answers, no abstention
             ([(50, True)] + [(1, False)] * 80, 400)]               # many singletons (some beyond MAJ_CLASSES)
    for classes, n in cases:
        for k in metrics.k_points(n):
            assert maj_at_k_of_classes(classes, n, k, seed=3) == reference_maj_at_k(classes, n, k, 3, limit), \
                (classes, n, k)


# --- a reply's choices: parsed without a call per string, renumbered without model_copy ---------------------------
def reference_without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: reference_without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [reference_without_none(item) for item in value]
    return value


def reference_sampled_tokens(raw: dict[str, Any]):
    ids = raw.get("token_ids")
    token_ids = ids if isinstance(ids, list) and ids and all(type(t) is int for t in ids) else None
    content = raw.get("logprobs").get("content") if isinstance(raw.get("logprobs"), dict) else None
    logprobs = None
    if isinstance(content, list) and content and all(isinstance(c, dict) for c in content):
        values = [c.get("logprob") for c in content]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            logprobs = [float(v) for v in values]
    if logprobs is not None and token_ids is not None and len(logprobs) != len(token_ids):
        logprobs = None
    return token_ids, logprobs


RAW_CHOICES = [
    {"index": 0, "message": {"role": "assistant", "content": "\\boxed{42}", "refusal": None, "tool_calls": None},
     "logprobs": None, "finish_reason": "stop"},
    {"index": 1, "message": {"content": "x", "tool_calls": [{"id": "c1", "type": "function", "function": {
        "name": "f", "arguments": "{}", "extra": None}}, None, 3, 2.5, True]}, "finish_reason": "tool_calls"},
    {"index": 2, "message": {"role": "assistant", "content": "ok"}, "token_ids": [5, 6],
     "logprobs": {"content": [{"logprob": -0.5}, {"logprob": -1}]}, "finish_reason": "length"},
    {"index": 3, "message": {"role": "assistant", "content": "y"}, "token_ids": [5, True], "logprobs": {"content": []}},
    {"index": 4, "message": {"role": "assistant", "content": "z"}, "token_ids": None,
     "logprobs": {"content": [{"logprob": -0.25}]}},
    {"index": 5, "message": {"role": "assistant", "content": "w"}, "token_ids": [1, 2, 3],
     "logprobs": {"content": [{"logprob": -0.25}]}},
    {"index": 6, "message": {"role": "assistant", "content": ""}, "token_ids": [], "logprobs": "bad"},
]


def test_choices_parse_as_the_reference_did():
    for raw in RAW_CHOICES:
        assert openai_backend._without_none(raw["message"]) == reference_without_none(raw["message"])
        assert openai_backend._sampled_tokens(raw) == reference_sampled_tokens(raw)
    assert openai_backend._without_none([{"a": None}, None, "s"]) == [{}, None, "s"]
    result = openai_backend.to_chat_result({"choices": RAW_CHOICES, "usage": {"prompt_tokens": 3,
                                                                              "completion_tokens": 9}}, "m", [])
    assert result.choices[0].message == {"role": "assistant", "content": "\\boxed{42}"}
    assert result.choices[2].token_ids == [5, 6] and result.choices[2].logprobs == [-0.5, -1.0]
    assert result.choices[5].logprobs is None  # 3 ids, 1 log-prob: not well formed


class _TaggedChoice(Choice):
    tag: str = "mine"


def test_renumbered_choices_equal_model_copies_and_keep_a_subclass():
    choices = [Choice(index=i, message={"role": "assistant", "content": f"{i}"}, finish_reason="stop",
                      token_ids=[i] if i % 2 else None, logprobs=[-0.5] if i % 2 else None) for i in range(5)]
    result = ChatResult(model="m", choices=choices, usage=Usage(prompt_tokens=4, completion_tokens=5))
    renumbered = sampling._renumbered(result, 256, 4)
    expected = [c.model_copy(update={"index": 256 + i}) for i, c in enumerate(choices[:4])]
    assert [c.model_dump() for c in renumbered.choices] == [c.model_dump() for c in expected]
    assert all(type(c) is Choice for c in renumbered.choices)
    assert renumbered.usage == result.usage and [c.index for c in result.choices] == [0, 1, 2, 3, 4]
    assert sampling._renumbered(result, 0, 5) is result  # already numbered: returned as is
    tagged = ChatResult(model="m", choices=[_TaggedChoice(index=0, message={"content": "a"}, tag="t")])
    moved = sampling._renumbered(tagged, 7, 1).choices[0]
    assert type(moved) is _TaggedChoice and moved.tag == "t" and moved.index == 7


# --- candidates built without validation; Usage's equality -------------------------------------------------------
def _values(**changes: Any) -> dict[str, Any]:
    prompt = [{"role": "user", "content": "What is 6 * 7?"}]
    values = dict(task_id="t0", round=1, workflow="direct", sample_index=9, generator=None, task_kind="math",
                  model="m", prompt=prompt, completion=[{"role": "assistant", "content": "\\boxed{42}"}],
                  final_answer="\\boxed{42}", steps=["\\boxed{42}"], finish_reason="stop",
                  usage=Usage(prompt_tokens=3, completion_tokens=7), cost_usd=1.5e-06, requests=1, cache_hits=0,
                  turns=1, tool_calls=0, tool_errors=0, stop_reason="final", error=None, error_message=None,
                  metadata={}, completion_token_ids=[1, 2], completion_logprobs=[-0.1, -0.2], verdict=None)
    values.update(changes)
    return values


@pytest.mark.parametrize("changes", [{}, {"usage": Usage()}, {"completion_token_ids": None, "completion_logprobs": None,
                                                                "requests": 0, "generator": "direct"},
                                     {"error": "timeout", "error_message": "slow", "final_answer": "", "steps": []}])
def test_a_trusted_candidate_equals_a_validated_one(changes):
    trusted, validated = Candidate.trusted(**_values(**changes)), Candidate(**_values(**changes))
    assert trusted == validated and trusted.model_dump() == validated.model_dump()
    assert trusted.to_store() == validated.to_store()
    assert trusted.model_fields_set == validated.model_fields_set
    assert trusted.export_row() == validated.export_row()
    assert Candidate.from_store(json.loads(trusted.to_store()[1]), trusted.prompt) == validated


def test_a_trusted_candidate_needs_every_field_and_no_other():
    values = _values()
    del values["usage"]
    with pytest.raises(TypeError, match="missing \\['usage'\\]"):
        Candidate.trusted(**values)
    with pytest.raises(TypeError, match="unknown \\['colour'\\]"):
        Candidate.trusted(**_values(colour="red"))


class _MoreUsage(Usage):
    pass


def test_usage_equality_is_pydantics():
    assert Usage(prompt_tokens=1) == Usage(prompt_tokens=1) and Usage() == Usage()
    assert Usage(prompt_tokens=1) != Usage(prompt_tokens=2) and Usage(estimated=True) != Usage()
    assert Usage() != _MoreUsage() and _MoreUsage() == _MoreUsage()  # another class is never equal
    assert Usage() != {"prompt_tokens": 0} and Usage() != 0
    assert Usage(prompt_tokens=3, completion_tokens=4).model_dump_json(exclude_defaults=True) == \
        '{"prompt_tokens":3,"completion_tokens":4}'


# --- the cyclic GC of a streaming process ---------------------------------------------------------------------------
def test_the_first_streamed_task_tunes_the_gc_once_and_keeps_it_off_where_it_was_off():
    import subprocess
    import sys

    script = """
import gc
from selfplay.pipeline import stream
gc.set_threshold(700, 10, 10)
stream._tune_gc()
first = (gc.get_threshold(), gc.get_freeze_count() > 0)
gc.set_threshold(500_000, 5, 5)
stream._tune_gc()  # once per process: a later task changes nothing
second = gc.get_threshold()
stream._GC_TUNED = False
gc.set_threshold(0)
stream._tune_gc()
print(first, second, gc.get_threshold())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"(({GC_YOUNG}, 10, 10), True) (500000, 5, 5) (0, 5, 5)"
