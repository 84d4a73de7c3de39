"""SFT end to end on the tiny models: learns a mapping (full and LoRA), resumes exactly, exports loadable weights."""

import os
import shutil

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from transformers import AutoModelForCausalLM  # noqa: E402

from trainer.config import TrainConfig  # noqa: E402
from trainer.encode import render  # noqa: E402
from trainer.lora import apply_lora, is_peft, merge_and_export  # noqa: E402
from trainer.models import count_parameters, load_model  # noqa: E402
from trainer.sft import train_sft  # noqa: E402

WORDS = ["cat", "dog", "sun", "car", "tree", "fish", "bird", "moon", "star", "rain"]
ROWS = [{"messages": [{"role": "user", "content": w}, {"role": "assistant", "content": w[::-1].upper()}]}
        for w in WORDS]


def greedy(model, tokenizer, prompt: str, max_new_tokens: int = 12) -> tuple[str, bool]:
    """Greedy answer to a user prompt and whether generation ended with eos."""
    enc = tokenizer(render(tokenizer, [{"role": "user", "content": prompt}], add_generation_prompt=True),
                    add_special_tokens=False, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)[0, enc["input_ids"].shape[1]:]
    return tokenizer.decode(out, skip_special_tokens=True), int(out[-1]) == tokenizer.eos_token_id


def test_sft_learns_a_mapping_and_stops_at_eos(tmp_path):
    model, tokenizer = load_model("micro-llama")
    config = TrainConfig(lr=1e-2, epochs=60, batch_size=10, warmup_steps=5, log_every=10)
    metrics = train_sft(model, tokenizer, ROWS, config, out_dir=str(tmp_path))
    assert metrics["final_loss"] < 0.1 and metrics["steps"] == 60 and metrics["tokens_per_s"] > 0
    answers = {w: greedy(model, tokenizer, w) for w in WORDS}
    assert answers == {w: (w[::-1].upper(), True) for w in WORDS}
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 6 and '"tokens_per_s"' in lines[-1] and (tmp_path / "config.json").exists()


def test_sft_with_packing_and_grad_accumulation_learns_too():
    model, tokenizer = load_model("micro-llama")
    config = TrainConfig(lr=1e-2, epochs=60, batch_size=2, grad_accum=2, packing=True, max_length=128,
                         warmup_steps=5)
    metrics = train_sft(model, tokenizer, ROWS, config)
    assert metrics["final_loss"] < 0.2
    assert sum(greedy(model, tokenizer, w)[0] == w[::-1].upper() for w in WORDS) >= 9


def test_lora_sft_trains_only_adapters_and_exports_a_plain_checkpoint(tmp_path):
    # LoRA adapts a trained model (on a random-init one the frozen embeddings/final norm cap the logits):
    # full-SFT the reverse mapping first, then teach a different mapping through the adapters only.
    base, tokenizer = load_model("micro-llama")
    train_sft(base, tokenizer, ROWS, TrainConfig(lr=1e-2, epochs=40, batch_size=10, warmup_steps=5))
    frozen_embedding = base.get_input_embeddings().weight.detach().clone()
    model = apply_lora(base, TrainConfig(lora_r=8, lora_alpha=16))
    assert is_peft(model) and count_parameters(model, trainable_only=True) < count_parameters(model) / 4
    upper = [{"messages": [{"role": "user", "content": w}, {"role": "assistant", "content": w.upper()}]}
             for w in WORDS[:5]]
    metrics = train_sft(model, tokenizer, upper, TrainConfig(lr=1e-2, epochs=40, batch_size=5, warmup_steps=5))
    assert metrics["final_loss"] < 0.5
    assert torch.equal(model.get_input_embeddings().weight, frozen_embedding)  # base weights untouched
    answers = {w: greedy(model, tokenizer, w)[0] for w in WORDS[:5]}
    assert sum(answers[w] == w.upper() for w in WORDS[:5]) >= 4
    merge_and_export(model, tokenizer, str(tmp_path / "merged"), adapter_dir=str(tmp_path / "adapter"))
    plain = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"), local_files_only=True)
    assert not is_peft(plain) and (tmp_path / "adapter" / "adapter_config.json").exists()
    assert {w: greedy(plain, tokenizer, w)[0] for w in WORDS[:5]} == answers


def test_resume_from_checkpoint_gives_the_same_final_weights(tmp_path):
    # 10 rows, batch 2, accumulate 2: 5 batches = 3 steps per epoch; checkpoint at step 4 is mid-epoch 2
    config = TrainConfig(lr=5e-3, max_steps=7, batch_size=2, grad_accum=2, save_steps=2, save_total_limit=3,
                         warmup_steps=2, seed=7)
    full_model, tokenizer = load_model("micro-llama")
    train_sft(full_model, tokenizer, ROWS, config, out_dir=str(tmp_path / "full"))
    assert sorted(os.listdir(tmp_path / "full" / "checkpoints")) == ["step-4", "step-6", "step-7"]

    shutil.copytree(tmp_path / "full" / "checkpoints" / "step-4", tmp_path / "resumed" / "checkpoints" / "step-4")
    resumed_model, _ = load_model("micro-llama", seed=123)  # different init: everything must come from the checkpoint
    metrics = train_sft(resumed_model, tokenizer, ROWS, config, out_dir=str(tmp_path / "resumed"))
    assert metrics["resumed_from"].endswith("step-4") and metrics["steps"] == 7
    full_state, resumed_state = full_model.state_dict(), resumed_model.state_dict()
    assert all(torch.equal(full_state[k], resumed_state[k]) for k in full_state)
