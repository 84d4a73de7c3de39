"""DPO on the tiny model: raises the chosen-vs-rejected margin on held-out pairs; LoRA reference = adapters off."""

import random

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from trainer.config import TrainConfig  # noqa: E402
from trainer.dpo import preference_logps, train_dpo  # noqa: E402
from trainer.lora import apply_lora  # noqa: E402
from trainer.models import load_model  # noqa: E402


def pairs(n: int, seed: int) -> list[dict]:
    """Prefer answers that start with 'yes' over 'no', whatever the (random) question."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        word = "".join(rng.choice("abcdefgh") for _ in range(3))
        rows.append({"prompt": [{"role": "user", "content": word}],
                     "chosen": [{"role": "assistant", "content": f"yes {word}"}],
                     "rejected": [{"role": "assistant", "content": f"no {word}"}]})
    return rows


def margin(model, tokenizer, rows) -> float:
    chosen, rejected = preference_logps(model, tokenizer, rows)
    return float((chosen - rejected).mean())


def test_dpo_raises_held_out_margin_and_reports_metrics(tmp_path):
    model, tokenizer = load_model("micro-llama")
    train, held_out = pairs(24, seed=0), pairs(8, seed=1)
    before = margin(model, tokenizer, held_out)
    config = TrainConfig(lr=3e-3, epochs=4, batch_size=8, beta=0.1, log_every=3)
    metrics = train_dpo(model, tokenizer, train, config, out_dir=str(tmp_path))
    after = margin(model, tokenizer, held_out)
    assert after > before + 5.0, (before, after)
    assert metrics["rewards/accuracy"] > 0.9 and metrics["rewards/margin"] > 0
    assert metrics["rewards/chosen"] > metrics["rewards/rejected"]
    assert metrics["final_loss"] < 0.69  # below log 2: the starting loss when policy == reference


def test_lora_dpo_reference_is_the_policy_with_adapters_disabled():
    base, tokenizer = load_model("micro-llama")
    rows = pairs(8, seed=2)
    base_margin = margin(base, tokenizer, rows)
    model = apply_lora(base, TrainConfig(lora_r=8, lora_alpha=16))
    train_dpo(model, tokenizer, rows, TrainConfig(lr=1e-2, epochs=3, batch_size=8))
    chosen, rejected = preference_logps(model, tokenizer, rows, use_reference=True)
    assert float((chosen - rejected).mean()) == pytest.approx(base_margin, abs=1e-4)  # the reference did not move
    assert margin(model, tokenizer, rows) > base_margin + 0.5  # the policy did
