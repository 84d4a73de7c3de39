"""Losses, advantages and the LR schedule against values computed by hand."""

import math

import pytest

torch = pytest.importorskip("torch")

from trainer.losses import (clipped_token_loss, dpo_loss, dpo_rewards, group_advantages, grpo_loss, k3_kl,  # noqa: E402
                            sft_loss_sum, token_logps, warmup_cosine)

T = torch.tensor


def test_dpo_loss_hand_values():
    # pair 1: logits = (-1 - -2) - (-3 - -2) = 2 -> beta*2 = 1 -> -log sigmoid(1) = log(1 + e^-1)
    # pair 2: logits = (-2 - -1) - (-1 - -1) = -1 -> -0.5 -> log(1 + e^0.5)
    loss = dpo_loss(T([-1.0, -2.0]), T([-3.0, -1.0]), T([-2.0, -1.0]), T([-2.0, -1.0]), beta=0.5)
    expected = (math.log(1 + math.exp(-1)) + math.log(1 + math.exp(0.5))) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_dpo_loss_is_log2_when_policy_equals_reference():
    x = T([-5.0, -7.0])
    assert dpo_loss(x, x + 1, x, x + 1).item() == pytest.approx(math.log(2), abs=1e-6)


def test_dpo_rewards_margin_and_accuracy():
    r = dpo_rewards(T([-1.0, -2.0]), T([-3.0, -1.0]), T([-2.0, -1.0]), T([-2.0, -1.0]), beta=0.5)
    assert r["rewards/chosen"].tolist() == pytest.approx([0.5, -0.5])
    assert r["rewards/rejected"].tolist() == pytest.approx([-0.5, 0.0])
    assert r["rewards/margin"].tolist() == pytest.approx([1.0, -0.5])
    assert r["rewards/accuracy"].tolist() == [1.0, 0.0]


def test_group_advantages_normalised_by_unbiased_std():
    # group [1,0,0,0]: mean .25, unbiased std sqrt((.5625 + 3*.0625)/3) = .5; group [3,1]: mean 2, std sqrt(2)
    adv = group_advantages(T([[1.0, 0.0, 0.0, 0.0]]))
    assert adv[0].tolist() == pytest.approx([0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001], rel=1e-6)
    adv2 = group_advantages(T([[3.0, 1.0]]), eps=0.0)
    assert adv2[0].tolist() == pytest.approx([1 / math.sqrt(2), -1 / math.sqrt(2)], rel=1e-6)


def test_group_advantages_without_std_and_equal_rewards():
    assert group_advantages(T([[1.0, 0.0, 0.0, 0.0]]), normalize_std=False)[0].tolist() == [0.75, -0.25, -0.25, -0.25]
    assert group_advantages(T([[2.0, 2.0, 2.0], [0.0, 0.0, 3.0]]))[0].tolist() == [0.0, 0.0, 0.0]
    assert group_advantages([[5.0]]).tolist() == [[0.0]]


def test_k3_kl_hand_value():
    # delta = log .25 - log .5 = -log 2 -> e^delta - delta - 1 = .5 + log 2 - 1
    kl = k3_kl(T([math.log(0.5), -1.0]), T([math.log(0.25), -1.0]))
    assert kl.tolist() == pytest.approx([math.log(2) - 0.5, 0.0], abs=1e-6)


def test_clipped_token_loss_four_cases():
    logps = T([math.log(1.5), math.log(1.5), math.log(0.5), math.log(0.5)])
    adv = T([1.0, -1.0, 1.0, -1.0])
    loss = clipped_token_loss(logps, torch.zeros(4), adv, clip_eps=0.2)
    # ratio 1.5, A=+1: min(1.5, 1.2) ; A=-1: min(-1.5, -1.2) ; ratio .5, A=+1: min(.5, .8) ; A=-1: min(-.5, -.8)
    assert loss.tolist() == pytest.approx([-1.2, 1.5, -0.5, 0.8], abs=1e-6)


def test_clipped_token_loss_asymmetric_high_clip():
    loss = clipped_token_loss(T([math.log(1.5)]), T([0.0]), T([1.0]), clip_eps=0.2, clip_eps_high=0.28)
    assert loss.item() == pytest.approx(-1.28, abs=1e-6)


def test_grpo_loss_is_token_level_normalised_and_gives_policy_gradient():
    # seq 1: one token, A=+1; seq 2: three tokens, A=-1; ratio 1 -> per-token losses -1 and +1,+1,+1 -> 2/4
    logps = torch.zeros(2, 3, requires_grad=True)
    mask = T([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    loss = grpo_loss(logps, logps.detach(), T([[1.0], [-1.0]]), mask)
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert logps.grad.flatten().tolist() == pytest.approx([-0.25, 0, 0, 0.25, 0.25, 0.25])


def test_grpo_loss_adds_kl_times_coefficient():
    logps = T([[math.log(0.5)]])
    ref = T([[math.log(0.25)]])
    loss = grpo_loss(logps, logps, T([[0.0]]), T([[1.0]]), ref_logps=ref, kl_coef=0.1)
    assert loss.item() == pytest.approx(0.1 * (math.log(2) - 0.5), abs=1e-7)


def test_token_logps_and_sft_loss_on_uniform_logits():
    logits = torch.zeros(1, 3, 4)  # uniform over 4 tokens: every log-prob is -log 4
    labels = T([[-100, 2, -100]]).long()
    assert token_logps(logits, labels)[0].tolist() == pytest.approx([-math.log(4), 0.0])
    assert sft_loss_sum(logits, T([[-100, 2, 3]]).long()).item() == pytest.approx(2 * math.log(4))


def test_warmup_cosine_schedule():
    values = [warmup_cosine(s, total_steps=10, warmup_steps=2) for s in (0, 1, 2, 6, 10)]
    assert values == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0], abs=1e-9)
    assert warmup_cosine(10, 10, 0, min_ratio=0.1) == pytest.approx(0.1)
