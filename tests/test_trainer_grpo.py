"""GRPO on the tiny model: rounds of (sample K per prompt -> reward -> train) raise the mean reward."""

import math

import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

from trainer.config import TrainConfig  # noqa: E402
from trainer.encode import render  # noqa: E402
from trainer.grpo import encode_groups, train_grpo  # noqa: E402
from trainer.models import load_model  # noqa: E402

PROMPTS = [f"q{i}" for i in range(8)]
LETTERS = set("abcdefghijklmnopqrstuvwxyz")


def reward(text: str) -> float:
    """Toy verifiable reward: the share of lowercase letters in 6 generated characters."""
    return sum(c in LETTERS for c in text) / 6


def sample_groups(model, tokenizer, k: int = 8) -> tuple[list[dict], float]:
    rows, rewards = [], []
    for prompt in PROMPTS:
        messages = [{"role": "user", "content": prompt}]
        enc = tokenizer(render(tokenizer, messages, add_generation_prompt=True), add_special_tokens=False,
                        return_tensors="pt")
        enc = {key: value.repeat(k, 1) for key, value in enc.items()}
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=6, do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
        completions = [tokenizer.decode(o[enc["input_ids"].shape[1]:], skip_special_tokens=True) for o in out]
        scores = [reward(c) for c in completions]
        rows.append({"prompt": messages, "completions": completions, "rewards": scores})
        rewards += scores
    return rows, sum(rewards) / len(rewards)


def test_grpo_rounds_raise_mean_reward():
    torch.manual_seed(0)
    model, tokenizer = load_model("micro-llama")
    config = TrainConfig(lr=1e-2, epochs=2, batch_size=16, kl_coef=0.01, log_every=100)  # 2 PPO passes per round
    rows, start = sample_groups(model, tokenizer)
    for _ in range(5):
        metrics = train_grpo(model, tokenizer, rows, config)
        rows, latest = sample_groups(model, tokenizer)
    assert metrics["steps"] == 8 and metrics["kl"] > 0 and 0 < metrics["clip_fraction"] < 1  # the 2nd pass clips
    assert latest > start + 0.3, (start, latest)


def test_groups_with_equal_rewards_carry_no_signal_and_are_dropped():
    _, tokenizer = load_model("micro-llama")
    rows = [{"prompt": "a", "completions": ["x", "y"], "rewards": [1.0, 1.0]},
            {"prompt": "b", "completions": ["x", "y"], "rewards": [1.0, 0.0]}]
    seqs, stats = encode_groups(tokenizer, rows, TrainConfig())
    assert stats["groups_trained"] == 1 and len(seqs) == 2 and seqs[0].extra["adv"] > 0 > seqs[1].extra["adv"]
    model, _ = load_model("micro-llama")
    assert train_grpo(model, tokenizer, rows[:1], TrainConfig())["steps"] == 0


def test_zero_advantage_sequences_are_dropped_not_batched():
    """With negatives scaled to 0 the failed completions have no gradient; kept, they would fill the batches (at
    p = 1/8, 7 of 8 sequences) and shrink the share of each step that learns. With a KL term they stay (it acts on
    every sequence)."""
    _, tokenizer = load_model("micro-llama")
    rows = [{"prompt": "a", "completions": ["x", "y", "z", "w"], "rewards": [1.0, 0.0, 0.0, 0.0]}]
    seqs, stats = encode_groups(tokenizer, rows, TrainConfig(negative_advantage_scale=0.0, normalize_std=False))
    assert [s.extra["adv"] for s in seqs] == [0.75] and stats["groups_trained"] == 1
    seqs, _ = encode_groups(tokenizer, rows, TrainConfig(negative_advantage_scale=0.1, normalize_std=False))
    assert [round(s.extra["adv"], 3) for s in seqs] == [0.75, -0.025, -0.025, -0.025]
    seqs, _ = encode_groups(tokenizer, rows, TrainConfig(negative_advantage_scale=0.0, kl_coef=0.1))
    assert len(seqs) == 4


def test_optimizer_carry_continues_one_adamw_across_calls():
    model, tokenizer = load_model("micro-llama")
    rows = [{"prompt": f"p{i}", "completions": ["x", "yy"], "rewards": [1.0, 0.0]} for i in range(4)]
    config = TrainConfig(lr=1e-3, batch_size=4, max_steps=2, progress="off")
    carry: dict = {}
    train_grpo(model, tokenizer, rows, config, optimizer_carry=carry)
    first = {k: v["step"].item() for k, v in carry["state"]["state"].items()}
    before = [p.detach().clone() for p in model.parameters()]
    train_grpo(model, tokenizer, rows, config, optimizer_carry=carry)
    second = {k: v["step"].item() for k, v in carry["state"]["state"].items()}
    assert set(first.values()) == {2.0} and set(second.values()) == {4.0}  # the moments continue, not restart
    # the carried state ended at lr 0 (cosine); the second call trains at its own lr again
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.parameters()))


def test_policy_shift_against_hand_computed_values():
    from trainer.encode import Encoded
    from trainer.grpo import policy_shift

    seq = Encoded(ids=[5, 6, 7, 8], mask=[0, 0, 1, 1])  # targets ids[1:]; trained: the last two
    before = torch.tensor([-9.0, -1.0, -2.0])  # the prompt position's value is masked out
    after = torch.tensor([-9.0, -0.5, -3.0])
    out = policy_shift([seq], [before], [after])
    kl = ((math.exp(0.5) - 0.5 - 1) + (math.exp(-1.0) + 1.0 - 1)) / 2
    assert out["kl_to_sampler"] == pytest.approx(kl)
    assert out["entropy"] == pytest.approx(1.5) and out["logp_delta"] == pytest.approx(-0.25)


def test_anchor_rows_add_an_nll_term_that_raises_their_log_probs():
    from trainer.encode import encode_sft
    from trainer.logps import frozen_token_logps
    from trainer.sft import _pad_id

    rows = [{"prompt": f"p{i}", "completions": ["x", "yy"], "rewards": [1.0, 0.0]} for i in range(4)]
    anchors = [{"messages": [{"role": "user", "content": f"s{i}"}, {"role": "assistant", "content": "zzz"}]}
               for i in range(8)]
    gains = {}
    for coef in (0.0, 1.0):
        torch.manual_seed(0)
        model, tokenizer = load_model("micro-llama")
        seqs = encode_sft(tokenizer, anchors, 64)
        before = sum(float(x.sum()) for x in frozen_token_logps(model, seqs, _pad_id(tokenizer), 8))
        metrics = train_grpo(model, tokenizer, rows, TrainConfig(lr=3e-3, batch_size=16, epochs=3, anchor_coef=coef,
                                                                 progress="off"), anchor_rows=anchors)
        gains[coef] = sum(float(x.sum()) for x in frozen_token_logps(model, seqs, _pad_id(tokenizer), 8)) - before
        assert metrics["anchor_sequences"] == (8 if coef else 0) and metrics["sequences"] == 8
    assert gains[1.0] > gains[0.0] + 1.0, gains


def test_sampled_ids_and_sampler_log_probs_are_used_as_the_old_policy():
    _, tokenizer = load_model("micro-llama")
    ids = tokenizer("ab", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    logps = [-0.1 * (i + 1) for i in range(len(ids))]
    rows = [{"prompt": [{"role": "user", "content": "q"}], "completions": ["ab", "c"], "rewards": [1.0, 0.0],
             "completion_token_ids": [ids, None], "completion_logprobs": [logps, None]}]
    seqs, _ = encode_groups(tokenizer, rows, TrainConfig())
    sampled, text = seqs
    assert sampled.ids[-len(ids):] == ids and "sampler_logps" not in text.extra  # the second one: re-encoded text
    aligned = sampled.extra["sampler_logps"]
    trained = [t for t in range(len(sampled.ids) - 1) if sampled.mask[t + 1]]  # aligned position t predicts t + 1
    assert [round(float(aligned[t]), 6) for t in trained] == [round(v, 6) for v in logps]
    assert all(float(aligned[t]) == 0.0 for t in range(len(aligned)) if t not in trained)
