"""The model-based PRM: token layout parity (trainer vs verifiers), the BCE by hand, and a tiny PRM that learns."""

import json
import math
import random

import pytest
import torch

from trainer.config import TrainConfig
from trainer.data import DataError
from trainer.prm import encode_steps as train_encode
from trainer.prm import label_value, run_prm, step_bce_sum, validate_prm_rows
from trainer.tiny import build_tiny_tokenizer
from verifiers.prm.model import ModelPRM
from verifiers.prm.model import encode_steps as score_encode


def copy_rows(n, seed, soft_every=0):
    """Synthetic labelled steps: a step "say D" is right iff D is the digit the prompt asks to copy."""
    rng, rows = random.Random(seed), []
    for i in range(n):
        digit, steps, labels = rng.randrange(4), [], []
        for _ in range(rng.randint(1, 3)):
            good = rng.random() < 0.5
            said = digit if good else rng.choice([d for d in range(4) if d != digit])
            steps.append(f"say {said}")
            labels.append((1.0 if good else 0.0) if soft_every and i % soft_every == 0 else good)
        rows.append({"prompt": f"copy {digit}", "completions": steps, "labels": labels})
    return rows


@pytest.mark.parametrize("prompt, steps, max_length", [
    ("copy 3", ["say 3", "say 1"], 64),
    ([{"role": "user", "content": "What is 2 + 2?"}], ["2 + 2 = 4.", "So \\boxed{4}."], 256),
    ("a long prompt " * 20, ["x", "y"], 40),       # left-truncated prompt
    ("p", ["a step far too long " * 5], 20),        # does not fit: None
    ("p", [], 32),
])
def test_trainer_and_verifier_use_the_same_layout(prompt, steps, max_length):
    tokenizer = build_tiny_tokenizer()
    got = score_encode(tokenizer, prompt, steps, "\n\n", max_length)
    assert got == train_encode(tokenizer, prompt, steps, "\n\n", max_length)
    if got is not None:
        ids, positions = got
        assert len(ids) <= max_length and len(positions) == len(steps)
        assert all(tokenizer.decode(ids[p - 1:p + 1]) == "\n\n" for p in positions)


def test_step_bce_by_hand():
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    loss, correct = step_bce_sum(logits, torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx(math.log(2) + math.log(1 + math.exp(2)), rel=1e-5)
    assert correct.item() == 0  # logit 0 is not > 0; logit 2 calls a wrong step right
    soft, _ = step_bce_sum(logits, torch.tensor([0]), torch.tensor([2]), torch.tensor([0.25]))
    p = 1 / (1 + math.exp(1))
    assert soft.item() == pytest.approx(-(0.25 * math.log(p) + 0.75 * math.log(1 - p)), rel=1e-5)


def test_labels_and_rows_are_checked():
    assert (label_value(True), label_value(False), label_value(0.25)) == (1.0, 0.0, 0.25)
    for bad in (1.5, -0.1, float("nan"), "yes", None):
        with pytest.raises(DataError):
            label_value(bad)
    with pytest.raises(DataError):
        validate_prm_rows([{"prompt": "p", "completions": ["a", "b"], "labels": [True]}])
    with pytest.raises(DataError):
        validate_prm_rows([])


@pytest.fixture(scope="module")
def trained_prm(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: one thread is faster, and the machine is shared
    root = tmp_path_factory.mktemp("prm")
    data = root / "prm.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in copy_rows(600, seed=1, soft_every=3)))
    config = TrainConfig(max_steps=400, batch_size=16, lr=2e-3, warmup_steps=20, max_length=128, progress="off",
                         log_every=100, cpu=True, seed=0)
    try:
        metrics = run_prm("micro-llama", str(data), str(root / "out"), config)
        yield metrics, ModelPRM.load(str(root / "out"), device="cpu")
    finally:
        torch.set_num_threads(threads)


def test_a_tiny_prm_learns_to_separate_good_and_bad_steps(trained_prm):
    metrics, prm = trained_prm
    assert metrics["steps"] == 400 and metrics["skipped_too_long"] == 0
    held_out = copy_rows(120, seed=2)
    scores = prm.score_many([(r["prompt"], r["completions"]) for r in held_out])
    pairs = [(s, bool(l)) for r, ss in zip(held_out, scores) for s, l in zip(ss, r["labels"])]
    accuracy = sum((s > 0.5) == label for s, label in pairs) / len(pairs)
    good = sum(s for s, label in pairs if label) / sum(label for _, label in pairs)
    bad = sum(s for s, label in pairs if not label) / sum(not label for _, label in pairs)
    assert accuracy >= 0.75 and good - bad >= 0.3, (accuracy, good, bad)


def test_the_loaded_prm_is_a_verifier(trained_prm):
    _, prm = trained_prm
    right = prm("say 2\n\nsay 2", prompt="copy 2")
    wrong = prm("say 2\n\nsay 0", prompt="copy 2")
    assert right.step_scores and len(right.step_scores) == 2 and right.error is None
    assert wrong.score < right.score and wrong.step_scores[1] < right.step_scores[1]
    assert prm("", prompt="copy 2").error  # no steps: unknown, not wrong
    prm.max_length = 8
    try:
        assert prm("say 2\n\nsay 2", prompt="copy 2").error  # does not fit: unknown, not wrong
    finally:
        prm.max_length = 128
