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
        ids, positions, spans = got
        assert len(ids) <= max_length and len(positions) == len(steps) == len(spans)
        assert all(tokenizer.decode(ids[p - 1:p + 1]) == "\n\n" for p in positions)
        assert [tokenizer.decode(ids[s:e]) for s, e in spans] == steps  # each step's own tokens, no separator


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


def test_the_confidence_input_is_the_least_likely_token_of_each_step_and_survives_save_and_load(tmp_path):
    from trainer.models import load_model
    from trainer.prm import encode_steps, load_prm_module, save_prm, step_confidence, train_prm

    module, tok, _ = load_prm_module("micro-llama", seed=0, confidence=True)
    lm, _ = load_model("micro-llama", seed=0)
    assert torch.equal(module.lm_weight, lm.get_output_embeddings().weight)
    ids, positions, spans = encode_steps(tok, "copy 3", ["say 3", "say 1 now"], "\n\n", 64)
    with torch.no_grad():
        logp = torch.log_softmax(lm(torch.tensor([ids])).logits[0].float(), -1)
        hidden = module.backbone(input_ids=torch.tensor([ids])).last_hidden_state
        feature = step_confidence(hidden, torch.tensor([ids]), module.lm_weight,
                                  [(0, p, s, e) for p, (s, e) in zip(positions, spans)])
    for p, (s, e) in zip(positions, spans):
        expected = min(logp[t - 1, ids[t]].item() for t in range(s, e))
        assert feature[0, p].item() == pytest.approx(expected, abs=1e-4)

    backbone_before = {k: v.clone() for k, v in module.backbone.state_dict().items()}
    head_before = module.head.weight.clone()
    config = TrainConfig(max_steps=5, batch_size=8, lr=1e-2, max_length=64, progress="off", cpu=True, seed=0)
    train_prm(module, tok, copy_rows(40, seed=3), config)
    assert all(torch.equal(v, module.backbone.state_dict()[k]) for k, v in backbone_before.items())  # frozen
    assert not torch.equal(head_before, module.head.weight)                                          # learned

    save_prm(module, tok, str(tmp_path / "prm"), "\n\n", 64)
    loaded = ModelPRM.load(str(tmp_path / "prm"), device="cpu")
    rows = copy_rows(6, seed=4)
    got = loaded.score_many([(r["prompt"], r["completions"]) for r in rows])
    for row, scores in zip(rows, got):
        ids, positions, spans = encode_steps(tok, row["prompt"], row["completions"], "\n\n", 64)
        with torch.no_grad():
            logits = module.eval()(torch.tensor([ids]), None, [(0, p, s, e) for p, (s, e) in zip(positions, spans)])
        assert scores == pytest.approx([torch.sigmoid(logits[0, p]).item() for p in positions], abs=1e-5)
    reloaded, _, separator = load_prm_module(str(tmp_path / "prm"))
    assert reloaded.confidence and separator == "\n\n" and torch.equal(reloaded.lm_weight, module.lm_weight)
