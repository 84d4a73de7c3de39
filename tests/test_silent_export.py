"""Issue 26 item 9: `selfplay export` ready for training.

SFT: one row per distinct answer of a task (`--dedup`, on by default) and at most `--cap-per-task` (4) rows per task;
before, K copies of a task's answer were K rows (2,809 rows, 752 distinct texts). `--format grpo-prompts`: the prompt
dataset TRL's GRPOTrainer reads (conversational `prompt`, reference in `answer`, never a held-out task), scored by
our reward adapter; with trl installed, GRPOTrainer runs one step on it with the micro model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfplay.cli import main
from selfplay.core.store import RunStore
from tests.candidates import verified

TASKS = [{"id": "a", "prompt": "What is 2 + 2?", "answer": "4"}, {"id": "b", "prompt": "What is 3 + 3?", "answer": "6"},
         {"id": "held", "prompt": "What is 5 + 5?", "answer": "10"}]


def _user(task: dict) -> list[dict]:
    return [{"role": "user", "content": task["prompt"]}]


def _run_dir(tmp: Path) -> Path:
    a = ["\\boxed{4}", "\\boxed{4} ", " \\boxed{4}", "\\boxed{4}", "\\boxed{4}", "so \\boxed{4}", "so  \\boxed{4}",
         "2+2 is \\boxed{4}"]
    b = [f"way {i}: \\boxed{{6}}" for i in range(6)] + ["\\boxed{7}", "\\boxed{7}"]
    candidates = ([verified("a", i, text, True, prompt=_user(TASKS[0])) for i, text in enumerate(a)]
                  + [verified("b", i, text, text.endswith("{6}"), prompt=_user(TASKS[1])) for i, text in enumerate(b)]
                  + [verified("held", i, "\\boxed{10}", True, prompt=_user(TASKS[2]), workflow="eval")
                     for i in range(2)])
    out = tmp / "run"
    with RunStore(out) as store:
        store.put_tasks(TASKS)
        store.put_candidates(0, candidates)
        store.put_verdicts(0, [(c, "math", c.verdict.model_dump(mode="json")) for c in candidates])
        store.commit()
    return out


def _export(run: Path, out: Path, *flags: str) -> list[dict]:
    assert main(["export", str(run), "--out", str(out), *flags]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()]


def _answers(rows: list[dict], task: str) -> list[str]:
    return [r["messages"][-1]["content"] for r in rows if r["task_id"] == task]


def test_sft_export_drops_copies_and_caps_rows_per_task(tmp_path):
    run = _run_dir(tmp_path)
    rows = _export(run, tmp_path / "sft.jsonl", "--format", "sft")
    assert _answers(rows, "a") == ["\\boxed{4}", "so \\boxed{4}", "2+2 is \\boxed{4}"]  # 8 samples, 3 distinct texts
    assert len(_answers(rows, "b")) == 4  # 6 distinct passing answers, capped at 4
    assert "held" not in {r["task_id"] for r in rows}
    every = _export(run, tmp_path / "all.jsonl", "--format", "sft", "--no-dedup", "--cap-per-task", "0")
    assert len(_answers(every, "a")) == 8 and len(_answers(every, "b")) == 6
    two = _export(run, tmp_path / "two.jsonl", "--format", "sft", "--cap-per-task", "2")
    assert len(_answers(two, "a")) == 2 and len(_answers(two, "b")) == 2


def test_a_negative_cap_is_one_message(tmp_path, capsys):
    run = _run_dir(tmp_path)
    assert main(["export", str(run), "--format", "sft", "--cap-per-task", "-1", "--out", str(tmp_path / "x.jsonl")]) == 1
    assert "--cap-per-task -1" in capsys.readouterr().err


def test_grpo_prompts_load_with_datasets_and_score_with_the_reward_adapter(tmp_path):
    from datasets import load_dataset

    from verifiers.math import MathVerifier
    from verifiers.reward import as_reward_function

    run = _run_dir(tmp_path)
    out = tmp_path / "prompts.parquet"
    assert main(["export", str(run), "--format", "grpo-prompts", "--out", str(out)]) == 0
    data = load_dataset("parquet", data_files=str(out), split="train")
    assert data.column_names == ["prompt", "answer", "task_id"]
    assert list(data["task_id"]) == ["a", "b"]  # the held-out task is not a training prompt
    assert data[0]["prompt"] == [{"role": "user", "content": "What is 2 + 2?"}]
    reward = as_reward_function(MathVerifier())
    completions = [[{"role": "assistant", "content": "\\boxed{4}"}], [{"role": "assistant", "content": "\\boxed{5}"}]]
    assert reward(completions=completions, prompts=list(data["prompt"]), answer=list(data["answer"])) == [1.0, 0.0]


def test_trl_grpo_trainer_runs_a_step_on_the_exported_prompts(tmp_path):
    """TRL's own GRPOTrainer, our export, our reward adapter, the micro model: one optimizer step."""
    pytest.importorskip("trl")
    from datasets import load_dataset
    from trl import GRPOConfig, GRPOTrainer

    from trainer.models import load_model
    from verifiers.math import MathVerifier
    from verifiers.reward import as_reward_function

    run = _run_dir(tmp_path)
    out = tmp_path / "prompts.jsonl"
    assert main(["export", str(run), "--format", "grpo-prompts", "--out", str(out)]) == 0
    model, tokenizer = load_model("micro-llama")
    model.save_pretrained(tmp_path / "micro")
    tokenizer.save_pretrained(tmp_path / "micro")
    reward = as_reward_function(MathVerifier(), on_error=0.0)
    reward.__name__ = "math"
    args = GRPOConfig(output_dir=str(tmp_path / "grpo"), max_steps=1, per_device_train_batch_size=2,
                      num_generations=2, max_completion_length=8, learning_rate=1e-3, logging_steps=1,
                      report_to=[], save_strategy="no", use_cpu=True, bf16=False, seed=0)
    trainer = GRPOTrainer(model=str(tmp_path / "micro"), reward_funcs=[reward], args=args,
                          train_dataset=load_dataset("json", data_files=str(out), split="train"),
                          processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1
    logged = [entry for entry in trainer.state.log_history if "reward" in entry or "rewards/math/mean" in entry]
    assert logged, trainer.state.log_history
