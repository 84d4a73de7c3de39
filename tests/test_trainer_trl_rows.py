"""The trainer takes TRL's SFT shapes besides `messages`: `prompt`/`completion` (strings or message lists) and
`text`; each is trained on the right tokens and learns; bad rows name the row."""

import pytest

from trainer.data import DataError, validate_sft

torch = pytest.importorskip("torch")

from trainer.config import TrainConfig  # noqa: E402
from trainer.encode import encode_sft, render  # noqa: E402
from trainer.models import load_model  # noqa: E402
from trainer.sft import train_sft  # noqa: E402

WORDS = ["cat", "dog", "sun", "car", "tree", "fish", "bird", "moon", "star", "rain"]
CONVERSATIONAL = [{"prompt": [{"role": "user", "content": w}], "completion": [{"role": "assistant",
                   "content": w[::-1].upper()}]} for w in WORDS]


@pytest.mark.parametrize("row, message", [
    ({"prompt": "a", "completion": [{"role": "assistant", "content": "b"}]}, "both be strings or both"),
    ({"prompt": [{"role": "user", "content": "a"}], "completion": [{"role": "user", "content": "b"}]},
     "no assistant message"),
    ({"completion": "b"}, "missing field(s) prompt"),
    ({"prompt": "a", "completion": ""}, "'completion' is empty"),
    ({"text": ""}, "'text' must be a non-empty string"),
])
def test_bad_trl_rows_name_the_row(row, message):
    with pytest.raises(DataError) as info:
        validate_sft([{"text": "fine"}, row], "d.jsonl")
    assert "d.jsonl:row 2" in str(info.value) and message in str(info.value)


def test_each_shape_trains_the_right_tokens():
    _, tokenizer = load_model("micro-llama")
    messages = {"messages": CONVERSATIONAL[0]["prompt"] + CONVERSATIONAL[0]["completion"]}
    rows = [{"text": "hello world"}, CONVERSATIONAL[0], messages, {"prompt": "Q: cat\nA:", "completion": " TAC"}]
    text, conv, msgs, plain = encode_sft(tokenizer, validate_sft(rows), 256)
    assert all(text.mask) and len(text.mask) == len(tokenizer("hello world", add_special_tokens=False)["input_ids"])
    assert (conv.ids, conv.mask) == (msgs.ids, msgs.mask)  # conversational prompt/completion == messages
    prompt_len = len(tokenizer("Q: cat\nA:", add_special_tokens=False)["input_ids"])
    assert plain.mask[:prompt_len] == [0] * prompt_len and all(plain.mask[prompt_len:])
    assert plain.ids[-1] == tokenizer.eos_token_id


def test_sft_learns_from_prompt_completion_rows():
    model, tokenizer = load_model("micro-llama")
    config = TrainConfig(lr=1e-2, epochs=60, batch_size=10, warmup_steps=5)
    metrics = train_sft(model, tokenizer, CONVERSATIONAL, config)
    assert metrics["final_loss"] < 0.1
    right = 0
    for w in WORDS:
        enc = tokenizer(render(tokenizer, [{"role": "user", "content": w}], add_generation_prompt=True),
                        add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=12, do_sample=False)[0, enc["input_ids"].shape[1]:]
        right += tokenizer.decode(out, skip_special_tokens=True) == w[::-1].upper()
    assert right == len(WORDS)
