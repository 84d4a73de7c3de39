"""End to end: `python -m selfplay train sft|dpo|grpo` on the micro model in a subprocess, and its errors."""

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SFT_ROW = {"messages": [{"role": "user", "content": "2+3"}, {"role": "assistant", "content": "5"}]}


def selfplay(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "selfplay", "train", *args, "--no-progress"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_cli_sft_trains_saves_a_loadable_model_and_resumes(tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", [SFT_ROW] * 8)
    out = tmp_path / "out"
    done = selfplay("sft", "--model", "micro-llama", "--data", data, "--out", str(out), "--steps", "3",
                    "--batch-size", "4", "--save-steps", "2", "--lr", "1e-3")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["resumed_from"] is None
    for name in ("model.safetensors", "tokenizer.json", "chat_template.jinja", "config.json", "metrics.jsonl"):
        assert (out / name).exists(), name
    assert sorted(os.listdir(out / "checkpoints")) == ["step-2", "step-3"]
    again = selfplay("sft", "--model", "micro-llama", "--data", data, "--out", str(out), "--steps", "3",
                     "--batch-size", "4", "--save-steps", "2", "--lr", "1e-3")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["resumed_from"].endswith("step-3")


def test_cli_dpo_with_lora_then_grpo_on_its_output(tmp_path):
    pairs = [{"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "yes"}],
              "rejected": [{"role": "assistant", "content": "no"}]}] * 4
    dpo = selfplay("dpo", "--model", "micro-llama", "--data", write_jsonl(tmp_path / "p.jsonl", pairs),
                   "--out", str(tmp_path / "dpo"), "--lora", "--steps", "2", "--batch-size", "2")
    assert dpo.returncode == 0, dpo.stderr
    assert (tmp_path / "dpo" / "adapter" / "adapter_config.json").exists()
    groups = [{"prompt": "1+1=", "completions": ["2", "3", "11"], "rewards": [1.0, 0.0, 0.0]}] * 2
    grpo = selfplay("grpo", "--model", str(tmp_path / "dpo"), "--data", write_jsonl(tmp_path / "g.jsonl", groups),
                    "--out", str(tmp_path / "grpo"), "--steps", "1", "--kl-coef", "0.05")
    assert grpo.returncode == 0, grpo.stderr
    assert json.loads(grpo.stdout.strip().splitlines()[-1])["steps"] == 1


def test_cli_bad_data_and_unknown_model_are_clear_errors(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [SFT_ROW, {"messages": [{"role": "user", "content": "no answer"}]}])
    result = selfplay("sft", "--model", "micro-llama", "--data", bad, "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and f"{bad}:row 2: 'messages' has no assistant message" in result.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = selfplay("grpo", "--model", "micro-llama", "--data", str(empty), "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "empty.jsonl: the file has no rows" in result.stderr
    good = write_jsonl(tmp_path / "good.jsonl", [SFT_ROW])
    result = selfplay("sft", "--model", "org/not-here", "--data", good, "--out", str(tmp_path / "o"))
    assert result.returncode == 1 and "never downloads" in result.stderr


def test_cli_prm_trains_a_step_scorer(tmp_path):
    import json as _json
    rows = [{"prompt": f"copy {d}", "completions": ["I read the digit.", f"say {d if ok else (d + 1) % 10}"],
             "labels": [True, ok]} for d in range(10) for ok in (True, False)]
    data = tmp_path / "prm.jsonl"
    data.write_text("".join(_json.dumps(r) + "\n" for r in rows))
    result = selfplay("prm", "--model", "micro-llama", "--data", str(data), "--out", str(tmp_path / "prm"),
                  "--steps", "3", "--batch-size", "8", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "prm").is_dir() and any((tmp_path / "prm").iterdir())
    result = selfplay("prm", "--model", "micro-llama", "--data", str(data), "--out", str(tmp_path / "conf"),
                      "--steps", "3", "--batch-size", "8", "--no-progress", "--confidence")
    assert result.returncode == 0, result.stderr
    assert _json.loads((tmp_path / "conf" / "prm_config.json").read_text())["confidence"] is True
