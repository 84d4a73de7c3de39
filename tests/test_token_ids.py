"""Train on what was sampled: token ids (and sampling log-probs) travel from the backend to the trainer.

- the local backend returns each sample's token ids and their log-probs under the unscaled distribution (checked
  against a teacher-forced forward pass);
- the openai backend reads vLLM's `token_ids` and `logprobs.content` when the server sends them;
- the direct and multi-turn workflows put the ids of the last assistant turn into the candidate, and the
  training rows carry them (`completion_token_ids`, `chosen_token_ids` / `rejected_token_ids`, and for GRPO
  `completion_token_ids` + `completion_logprobs`);
- a completion whose text does NOT round-trip through the tokenizer (an invalid UTF-8 byte, which decodes to
  U+FFFD and re-encodes as three other bytes) is trained on its sampled ids, and the model learns those ids.
"""

from __future__ import annotations

import asyncio

import pytest
import torch

from agents.llm.local import LocalBackend
from agents.llm.openai_backend import to_chat_result
from agents.llm.types import SamplingParams
from selfplay.pipeline.datasets import preference_row, rl_row, sft_row
from selfplay.core.candidate import Candidate
from tests.tiny_model import chat_ids, tiny_pair, use_one_thread
from trainer.data import DataError, validate_groups, validate_sft
from trainer.encode import encode_pair, encode_prompt_completion, encode_sft, group_sampled

use_one_thread()
PROMPT = [{"role": "user", "content": "What is 12+30?"}]


def test_local_backend_returns_the_sampled_ids_and_their_logprobs():
    model, tokenizer = tiny_pair()
    backend = LocalBackend(model, tokenizer, seed=0)
    try:
        result = asyncio.run(backend.chat(PROMPT, SamplingParams(max_tokens=12, temperature=1.0, seed=3, n=3)))
    finally:
        asyncio.run(backend.aclose())
    prompt_ids = chat_ids(tokenizer, PROMPT)
    for choice in result.choices:
        ids = choice.token_ids
        assert ids and len(choice.logprobs) == len(ids)
        body = ids[:-1] if ids[-1] == tokenizer.eos_token_id else ids
        assert tokenizer.decode(body, skip_special_tokens=True) == choice.text
        assert choice.finish_reason == ("stop" if ids[-1] == tokenizer.eos_token_id else "length")
        with torch.no_grad():
            logits = model(torch.tensor([prompt_ids + ids])).logits[0].float()
        want = torch.log_softmax(logits[len(prompt_ids) - 1:-1], dim=-1).gather(1, torch.tensor(ids)[:, None])[:, 0]
        assert torch.allclose(torch.tensor(choice.logprobs), want, atol=1e-4)
    assert result.usage.completion_tokens == sum(len(c.token_ids) for c in result.choices)


def test_openai_backend_reads_vllm_token_ids_and_logprobs():
    raw = {"choices": [
        {"index": 0, "message": {"role": "assistant", "content": "42"}, "finish_reason": "stop", "token_ids": [52, 50, 2],
         "logprobs": {"content": [{"token": "4", "logprob": -0.1}, {"token": "2", "logprob": -0.2},
                                  {"token": "</s>", "logprob": -0.3}]}},
        {"index": 1, "message": {"role": "assistant", "content": "41"}, "finish_reason": "stop", "token_ids": [52, 49],
         "logprobs": {"content": [{"token": "4", "logprob": -0.1}]}},  # misaligned: dropped
        {"index": 2, "message": {"role": "assistant", "content": "40"}, "finish_reason": "stop",
         "token_ids": ["52"]},  # not ids: ignored
    ], "usage": {"prompt_tokens": 5, "completion_tokens": 7}}
    result = to_chat_result(raw, "m", PROMPT)
    first, second, third = result.choices
    assert first.token_ids == [52, 50, 2] and first.logprobs == [-0.1, -0.2, -0.3]
    assert second.token_ids == [52, 49] and second.logprobs is None
    assert third.token_ids is None and third.logprobs is None
    plain = to_chat_result({"choices": [{"index": 0, "message": {"content": "x"}}]}, "m", PROMPT)
    assert plain.choices[0].token_ids is None  # a server that sends none: the text path, as before


def _not_round_tripping(tokenizer) -> tuple[list[int], str]:
    """Sampled ids whose text re-encodes to other ids: '4' then the lone byte 0xC3 then '2', eos."""
    ids = [ord("4"), 0xC3, ord("2"), tokenizer.eos_token_id]
    text = tokenizer.decode(ids[:-1], skip_special_tokens=True)
    assert tokenizer(text, add_special_tokens=False)["input_ids"] != ids[:-1]  # the premise: no round trip
    return ids, text


def test_a_completion_that_does_not_round_trip_is_encoded_as_sampled():
    _, tokenizer = tiny_pair()
    ids, text = _not_round_tripping(tokenizer)
    prompt_ids = chat_ids(tokenizer, PROMPT)
    messages = PROMPT + [{"role": "assistant", "content": text}]
    for enc in (encode_sft(tokenizer, [{"messages": messages, "completion_token_ids": ids}], 256)[0],
                encode_prompt_completion(tokenizer, PROMPT, text, 256, token_ids=ids, logprobs=[-1.0] * 4),
                encode_prompt_completion(tokenizer, PROMPT, messages[1:], 256, token_ids=ids)):
        assert enc.ids == prompt_ids + ids and enc.mask == [0] * len(prompt_ids) + [1] * len(ids)
        assert enc.extra["sampled"] and enc.extra["tail_start"] == len(prompt_ids)
    assert encode_prompt_completion(tokenizer, PROMPT, text, 256, token_ids=ids, logprobs=[-1.0] * 4
                                    ).extra["logprobs"] == [-1.0] * 4
    # without the ids, the text path re-encodes: other ids are trained
    text_path = encode_sft(tokenizer, [{"messages": messages}], 256)[0]
    trained = [t for t, m in zip(text_path.ids, text_path.mask) if m]
    assert 0xC3 not in trained and not text_path.extra.get("sampled")
    # a length-cut sample (no eos sampled) gets no eos appended
    cut = encode_prompt_completion(tokenizer, PROMPT, text, 256, token_ids=ids[:-1])
    assert cut.ids[-1] == ord("2") and tokenizer.eos_token_id not in cut.ids[len(prompt_ids):]


def test_ids_that_do_not_decode_to_the_text_are_not_trusted():
    _, tokenizer = tiny_pair()
    wrong = list(b"41") + [tokenizer.eos_token_id]  # another turn's ids (or another tokenizer's)
    enc = encode_prompt_completion(tokenizer, PROMPT, "42", 256, token_ids=wrong)
    assert not enc.extra.get("sampled") and enc.ids[-3:-1] == list(b"42")
    messages = PROMPT + [{"role": "assistant", "content": "42"}]
    assert not encode_sft(tokenizer, [{"messages": messages, "completion_token_ids": [10 ** 9]}], 256)[0].extra.get(
        "sampled")


def test_multi_turn_rows_train_earlier_turns_as_text_and_the_last_as_sampled():
    _, tokenizer = tiny_pair()
    ids, text = _not_round_tripping(tokenizer)
    messages = PROMPT + [{"role": "assistant", "content": "41"}, {"role": "user", "content": "wrong, again"},
                         {"role": "assistant", "content": text}]
    enc = encode_sft(tokenizer, [{"messages": messages, "completion_token_ids": ids}], 512)[0]
    assert enc.extra["sampled"] and enc.ids[-len(ids):] == ids
    trained = [t for t, m in zip(enc.ids, enc.mask) if m]
    assert trained[-len(ids):] == ids and list(b"41") == trained[:2]  # the first answer (text) is trained too
    head = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    assert enc.ids[:-len(ids)] == tokenizer(head, add_special_tokens=False)["input_ids"]


def test_the_trainer_learns_the_sampled_ids_not_the_re_encoding():
    """SFT on one row whose completion does not round-trip: with its ids the model learns byte 0xC3 after '4';
    on the text alone it learns the replacement character's first byte (0xEF) instead."""
    from trainer.config import TrainConfig
    from trainer.sft import train_sft

    def after_training(row) -> tuple[float, float]:
        model, tokenizer = tiny_pair(spread=0.0)
        config = TrainConfig(lr=3e-3, max_steps=30, batch_size=1, progress="off", seed=0)
        train_sft(model, tokenizer, [row], config)
        model.eval()
        prefix = chat_ids(tokenizer, PROMPT) + [ord("4")]
        with torch.no_grad():
            probs = torch.softmax(model(torch.tensor([prefix])).logits[0, -1].float(), dim=-1)
        return float(probs[0xC3]), float(probs[0xEF])

    _, tokenizer = tiny_pair()
    ids, text = _not_round_tripping(tokenizer)
    messages = PROMPT + [{"role": "assistant", "content": text}]
    sampled_c3, sampled_ef = after_training({"messages": messages, "completion_token_ids": ids})
    text_c3, text_ef = after_training({"messages": messages})
    print(f"sampled ids: p(0xC3)={sampled_c3:.3f} p(0xEF)={sampled_ef:.4f}; text: p(0xC3)={text_c3:.4f} "
          f"p(0xEF)={text_ef:.3f}")
    assert sampled_c3 > 0.2 and sampled_c3 > 10 * sampled_ef
    assert text_ef > 0.2 and text_ef > 10 * text_c3


def _candidate(index: int, text: str, ids, passed: bool, logprobs=None) -> dict:
    return {"task_id": "t", "workflow": "direct", "sample_index": index, "prompt_messages": 1,
            "messages": PROMPT + [{"role": "assistant", "content": text}], "final_answer": text,
            "completion_token_ids": ids, "completion_logprobs": logprobs, "error": None}


def test_training_rows_carry_the_ids_from_the_candidate_record():
    records = [_candidate(0, "42", [52, 50, 2], True, [-0.1, -0.2, -0.3]), _candidate(1, "41", [52, 49, 2], False),
               _candidate(2, "40", None, False)]
    verdicts = {("t", "direct", i): {"passed": i == 0, "score": float(i == 0), "details": {}} for i in range(3)}
    # a stored record of schema 1 (the whole conversation) read back as the typed Candidate, then verified
    items = [Candidate.from_store(r).with_verdict(verdicts[("t", "direct", r["sample_index"])]) for r in records]
    assert items[0].token_ids == [52, 50, 2] and items[0].logprobs == [-0.1, -0.2, -0.3]
    assert items[0].prompt == PROMPT and items[0].completion == [{"role": "assistant", "content": "42"}]
    assert sft_row(items[0])["completion_token_ids"] == [52, 50, 2]
    assert "completion_token_ids" not in sft_row(items[2])
    pair = preference_row(items[0], items[1])
    assert pair["chosen_token_ids"] == [52, 50, 2] and pair["rejected_token_ids"] == [52, 49, 2]
    assert "chosen_token_ids" not in preference_row(items[0], items[2])  # both or neither
    group = rl_row(items, [1.0, 0.0, 0.0])
    assert group["completion_token_ids"] == [[52, 50, 2], [52, 49, 2], None]
    assert group["completion_logprobs"] == [[-0.1, -0.2, -0.3], None, None]
    assert group_sampled(group, 0) == ([52, 50, 2], [-0.1, -0.2, -0.3]) and group_sampled(group, 2) == (None, None)
    assert validate_groups([group]) and validate_sft([sft_row(items[0])])


@pytest.mark.parametrize("change, message", [
    ({"completion_token_ids": [[1], [2]]}, "one entry"),
    ({"completion_token_ids": [[1], [-2], None]}, "token ids"),
    ({"completion_token_ids": [[1], [2], None], "completion_logprobs": [[-1.0, -2.0], None, None]}, "one finite"),
    ({"completion_logprobs": [[-1.0], None, None]}, "needs 'completion_token_ids'"),
])
def test_bad_token_keys_in_rl_rows_name_the_row(change, message):
    row = {"prompt": "p", "completions": ["a", "b", "c"], "rewards": [1, 0, 0], **change}
    with pytest.raises(DataError, match=message):
        validate_groups([row], source="rows.jsonl")


def test_a_preference_row_encodes_chosen_and_rejected_as_sampled():
    _, tokenizer = tiny_pair()
    ids, text = _not_round_tripping(tokenizer)
    row = {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": text}],
           "rejected": [{"role": "assistant", "content": "41"}], "chosen_token_ids": ids,
           "rejected_token_ids": list(b"41")}  # length-cut: no eos was sampled
    chosen, rejected = encode_pair(tokenizer, row, 256)
    prompt_ids = chat_ids(tokenizer, PROMPT)
    assert chosen.ids == prompt_ids + ids and rejected.ids == prompt_ids + list(b"41")
    plain_chosen, _ = encode_pair(tokenizer, {k: v for k, v in row.items() if not k.endswith("_token_ids")}, 256)
    assert plain_chosen.ids != chosen.ids and not plain_chosen.extra.get("sampled")


def test_dpo_trains_each_pair_on_its_sampled_ids():
    from trainer.dpo import encode_pairs

    _, tokenizer = tiny_pair()
    ids, text = _not_round_tripping(tokenizer)
    row = {"prompt": PROMPT, "chosen": [{"role": "assistant", "content": text}],
           "rejected": [{"role": "assistant", "content": "41"}], "chosen_token_ids": ids,
           "rejected_token_ids": list(b"41")}
    [(chosen, rejected)] = encode_pairs(tokenizer, [row], 256)
    prompt_ids = chat_ids(tokenizer, PROMPT)
    assert chosen.ids == prompt_ids + ids and rejected.ids == prompt_ids + list(b"41")
