"""`verifier = "prm"` in `selfplay run`: the PRM verifies the training candidates, is relabelled by the reference
and retrained each round (`[prm] retrain = "each_round"`), and its best-of-N is in every round record.

The family is "the lucky number" (prompt "lucky number, tag", answer always 7): a micro policy half-learns it in a
few steps and a micro PRM learns to tell 7 from the other digits, so the whole loop runs in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
LUCKY = "7"


def tag(split: str, i: int) -> str:
    return split[0] + ALPHABET[i // 26 % 26] + ALPHABET[i % 26]


def lucky_tasks(split: str, n: int, start: int = 0) -> list[dict]:
    return [{"id": f"{split}-{i}", "prompt": f"lucky number, {tag(split, i)}", "kind": "math", "answer": LUCKY}
            for i in range(start, start + n)]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def held_out_groups() -> list[tuple[str, list[str], int]]:
    """Ten held-out prompts, each with the ten digits as candidates, rotated: exactly one right (7) per prompt."""
    groups = []
    for g in range(10):
        digits = [str((g + c) % 10) for c in range(10)]
        groups.append((f"lucky number, {tag('held', 500 + g)}", digits, digits.index(LUCKY)))
    return groups


def held_out_best_of_n(prm_dir: str) -> float:
    from verifiers.prm.model import ModelPRM

    prm = ModelPRM.load(prm_dir, device="cpu")
    right = 0
    for prompt, candidates, answer in held_out_groups():
        scores = [prm(c, prompt=prompt).score for c in candidates]
        right += max(range(len(scores)), key=lambda i: (scores[i], -i)) == answer
    return right / 10


def write_setup(root: Path, rounds: int = 2, retrain: bool = True, prm_path: str = "prm0") -> Path:
    write_jsonl(root / "train.jsonl", lucky_tasks("train", 40))
    write_jsonl(root / "eval.jsonl", lucky_tasks("eval", 20))
    write_jsonl(root / "seed.jsonl", [{"messages": [{"role": "user", "content": t["prompt"]},
                                                    {"role": "assistant", "content": t["answer"]}]}
                                      for t in lucky_tasks("seed", 40)])
    retrain_keys = ('retrain = "each_round"\nsettings = { lr = 3e-3, batch_size = 16, max_steps = 150, '
                    'warmup_steps = 5, progress = "off", cpu = true }\n') if retrain else ""
    config = root / "run.toml"
    config.write_text(f"""
[model]
name = "micro-llama"
backend = "local"

[local]
threads = 1

[tasks]
train = "train.jsonl"
eval = "eval.jsonl"
seed_sft = "seed.jsonl"

[generate]
k = 4
max_tokens = 3
verifier = "prm"

[train]
cold_start_steps = 40
settings = {{ lr = 3e-3, batch_size = 16, max_steps = 4, progress = "off" }}

[eval]
k = 4

[loop]
rounds = {rounds}
require_improvement = false   # mechanics (serving, resume): micro-llama need not learn

[guards]
enabled = false

[monitors]
logp_samples = 8

[prm]
path = "{prm_path}"
pass_threshold = 0.5
{retrain_keys}""")
    return config


def initial_prm(root: Path) -> str:
    """An uninformed starting PRM (what `selfplay train prm` writes): three steps on rows whose labels contradict."""
    from trainer.config import TrainConfig
    from trainer.prm import run_prm

    rows = [{"prompt": t["prompt"], "completions": [said], "labels": [label]}
            for t in lucky_tasks("init", 4) for said in ("7", "0") for label in (True, False)]
    write_jsonl(root / "prm0.jsonl", rows)
    run_prm("micro-llama", str(root / "prm0.jsonl"), str(root / "prm0"),
            TrainConfig(max_steps=3, batch_size=8, lr=1e-3, max_length=64, progress="off", cpu=True, seed=0))
    return str(root / "prm0")


def selfplay(*args: str, crash_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "SELFPLAY_TORCH_THREADS": "1", "OMP_NUM_THREADS": "1"}
    env.pop("SELFPLAY_CRASH_AT", None)
    if crash_at:
        env["SELFPLAY_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-m", "selfplay", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=600)


def rounds_of(out: Path) -> list[dict]:
    return json.loads((out / "rounds.json").read_text())["rounds"]


def comparable(out: Path) -> list[dict]:
    """The round records without timings, with the run directory written as <out>."""
    drop = {"seconds", "cost_usd", "train_seconds", "tokens_per_s"}

    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in drop}
        return value
    return json.loads(json.dumps([clean(r) for r in rounds_of(out)]).replace(str(out), "<out>"))


def digest(directory: Path) -> str:
    files = sorted(p for p in directory.rglob("*.safetensors"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in files)).hexdigest()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("prm_loop")
    initial_prm(root)
    config = write_setup(root)
    done = selfplay("run", "--config", str(config), "--out", str(root / "out"), "--no-progress")
    assert done.returncode == 0, done.stderr
    return root, config


def test_prm_loop_records_best_of_n_and_retrains_each_round(reference):
    root, _ = reference
    out = root / "out"
    rounds = rounds_of(out)
    assert [r["round"] for r in rounds] == [0, 1, 2]
    for r in rounds:
        prm = r["prm"]
        assert 0.0 <= prm["best_of_n"] <= 1.0 and 0 < prm["picked"] <= 20  # tasks with a scorable sample
        assert prm["pass@1"] == r["eval_pass@1"] and prm["majority"] == r["eval_maj@k"]
    assert rounds[0]["prm"]["path"] == str(root / "prm0") and rounds[0]["prm"]["trained_on"] == 0
    for r in rounds[1:]:
        assert r["prm"]["path"] == str(out / "prm" / f"round-{r['round']}")
        assert 0 < r["prm"]["trained_on"] <= r["samples"] == 160  # labelled by the reference (empty answers: no steps)
        assert r["audit"]["audited"] > 0  # the reference re-checks the rows the PRM accepted
    assert "PRM best-of-N" in (out / "report.md").read_text()


def test_the_retrained_prm_changes_and_picks_right_on_held_out_groups(reference):
    root, _ = reference
    out = root / "out"
    first, second = out / "prm" / "round-1", out / "prm" / "round-2"
    assert digest(first) != digest(second) != digest(root / "prm0")
    assert json.loads((second / "refresh.json").read_text())["from"] == str(first)  # fine-tuned from round 1's
    # Chance on these groups is 1/10 (one right digit among ten): the uninformed start picks by noise. After two
    # rounds of reference labels the PRM picks 7 in at least half of the groups (five times chance).
    before, after = held_out_best_of_n(str(root / "prm0")), held_out_best_of_n(str(second))
    assert after >= 0.5 and after > before, (before, after)


def test_kill_during_retraining_then_the_same_command_ends_the_same(reference, tmp_path):
    root, config = reference
    out = tmp_path / "out"
    killed = selfplay("run", "--config", str(config), "--out", str(out), "--no-progress",
                      crash_at="round2:prm_trained")
    assert killed.returncode == -9, killed.stderr
    assert (out / "prm" / "round-2.partial").is_dir() and not (out / "prm" / "round-2").exists()
    resumed = selfplay("run", "--config", str(config), "--out", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert comparable(out) == comparable(root / "out")
    for name in ("round-1", "round-2"):
        assert digest(out / "prm" / name) == digest(root / "out" / "prm" / name)
    assert not (out / "prm" / "round-2.partial").exists()


def test_a_bad_prm_path_is_one_clear_error_before_anything_runs(tmp_path):
    config = write_setup(tmp_path, prm_path="no-such-prm")
    failed = selfplay("run", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "[prm] path" in failed.stderr and "no-such-prm" in failed.stderr and "selfplay train prm" in failed.stderr
    assert not (tmp_path / "out" / "run.db").exists()
    (tmp_path / "not-a-prm").mkdir()
    config = write_setup(tmp_path, prm_path="not-a-prm")
    failed = selfplay("run", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
    assert failed.returncode == 1 and "prm_config.json" in failed.stderr and "[prm] path" in failed.stderr
    config.write_text(config.read_text().split("[prm]")[0])
    failed = selfplay("run", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
    assert failed.returncode == 1 and "[generate] verifier" in failed.stderr and "[prm]" in failed.stderr


def test_best_of_n_by_hand():
    from selfplay.jobs.prm_refresh import best_of_n, outcome_row
    from tests.candidates import verified
    from verifiers.verdict import Verdict

    def item(task, index, score, passed=True, error=None):
        return verified(task, index, "", passed, score, error=error)

    prm = [item("a", 0, 0.2), item("a", 1, 0.9), item("b", 0, 0.7), item("b", 1, 0.7),
           item("c", 0, 0.99, error="too long")]
    reference = [item("a", 0, 1, True), item("a", 1, 1, False), item("b", 0, 1, True), item("b", 1, 0, False),
                 item("c", 0, 1, True)]
    # a: picks 1 (wrong); b: a tie, picks index 0 (right); c: nothing the PRM could score (wrong) -> 1 of 3
    assert best_of_n(prm, reference, ["a", "b", "c"]) == {"best_of_n": 1 / 3, "picked": 2}
    assert outcome_row("p", ["s1", "s2"], Verdict.ok()) == {"prompt": "p", "completions": ["s1", "s2"],
                                                            "labels": [True, True]}
    assert outcome_row("p", ["s1", "s2"], Verdict.wrong("no"))["labels"] == [False, False]
    assert outcome_row("p", ["s1"], Verdict.broken("timeout")) is None and outcome_row("p", [], Verdict.ok()) is None
