"""Tiny models and tokenizer, save/load round trips, chat encoding masks, packing isolation."""

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from trainer.encode import Encoded, encode_prompt_completion, encode_sft, pack, packed_batch, render  # noqa: E402
from trainer.models import ModelNotFound, count_parameters, load_model, save_model  # noqa: E402

CHAT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"}, {"role": "user", "content": "naïve 3+3?"},
        {"role": "assistant", "content": "6 ✓"}]


def test_tiny_llama_size_and_architecture():
    model, tokenizer = load_model("tiny-llama")
    assert 1_000_000 <= count_parameters(model) <= 5_000_000
    assert model.config.model_type == "llama" and len(tokenizer) == model.config.vocab_size
    qwen, _ = load_model("tiny-qwen")
    assert qwen.config.model_type == "qwen2"


def test_unknown_model_name_is_a_clear_error_and_never_downloads(tmp_path):
    with pytest.raises(ModelNotFound, match="never downloads"):
        load_model("Qwen/Qwen2.5-0.5B-Instruct")
    with pytest.raises(ModelNotFound, match="config.json"):
        load_model(str(tmp_path))


def test_save_load_round_trip_same_outputs_and_standard_tokenizer(tmp_path):
    model, tokenizer = load_model("micro-llama", seed=3)
    save_model(model, tokenizer, str(tmp_path))
    loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path), local_files_only=True)
    tok2 = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    ids = torch.tensor([tokenizer(render(tokenizer, CHAT), add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    for name in ("bos_token", "eos_token", "pad_token", "chat_template"):
        assert getattr(tok2, name) == getattr(tokenizer, name) and getattr(tok2, name)
    prompt = tok2.apply_chat_template(CHAT[:2], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|assistant|>")
    ids_loaded = tok2(prompt, add_special_tokens=False)["input_ids"]
    assert ids_loaded == tokenizer(prompt, add_special_tokens=False)["input_ids"]


def test_byte_level_tokenizer_round_trips_any_text():
    _, tokenizer = load_model("micro-llama")
    text = "naïve 数学 ✓ 12+34=46\n\ttabs"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text and all(i < 256 for i in ids)


def test_eos_closes_every_assistant_turn_and_is_the_generation_stop_token():
    model, tokenizer = load_model("micro-llama")
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    assert render(tokenizer, CHAT).count("4<|im_end|>") == 1 and tokenizer.eos_token == "<|im_end|>"
    # (the SFT test checks that a trained model's greedy generation actually ends with eos)


def test_sft_mask_covers_assistant_turns_and_their_eos_only():
    _, tokenizer = load_model("micro-llama")
    seq = encode_sft(tokenizer, [{"messages": CHAT}], max_length=1024)[0]
    trained = tokenizer.decode([i for i, m in zip(seq.ids, seq.mask) if m])
    assert trained == "4<|im_end|>6 ✓<|im_end|>"


def test_prompt_completion_masks_for_strings_and_messages():
    _, tokenizer = load_model("micro-llama")
    as_text = encode_prompt_completion(tokenizer, CHAT[:2], "4", 1024)
    as_chat = encode_prompt_completion(tokenizer, CHAT[:2], [{"role": "assistant", "content": "4"}], 1024)
    for seq in (as_text, as_chat):
        assert tokenizer.decode([i for i, m in zip(seq.ids, seq.mask) if m]) == "4<|im_end|>"
    plain = encode_prompt_completion(tokenizer, "Q: 1+1 A:", " 2", 1024)
    assert tokenizer.decode(plain.ids) == "Q: 1+1 A: 2<|im_end|>" and sum(plain.mask) == 3


def test_packed_rows_do_not_attend_across_examples():
    model, _ = load_model("micro-llama")
    a, b = Encoded(list(range(10, 17)), [1] * 7), Encoded(list(range(40, 45)), [1] * 5)
    batch = packed_batch(pack([a, b, a], max_length=13), pad_id=256)
    assert batch["input_ids"].shape == (2, 12)
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
        alone_a = model(input_ids=torch.tensor([a.ids]), use_cache=False).logits[0]
        alone_b = model(input_ids=torch.tensor([b.ids]), use_cache=False).logits[0]
    assert torch.allclose(packed[0, :7], alone_a, atol=1e-5)
    assert torch.allclose(packed[0, 7:12], alone_b, atol=1e-5)
    assert torch.allclose(packed[1, :7], alone_a, atol=1e-5)
