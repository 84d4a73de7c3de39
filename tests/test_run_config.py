"""`selfplay run`'s config validated whole at load: every bad input is one message (file:line, key, fix), exit 1,
no traceback, before any model is built; resume pinning refuses a changed pinned key and leaves config.json as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfplay.cli import main
from selfplay.config.resume import check_resume
from selfplay.core.view import run_dir_produced
from selfplay.config.run import PINNED, load_run_config
from selfplay.core.store import RunStore

BASE = """[model]
name = "micro-llama"
backend = "local"

[tasks]
builtin = "addition"
n_seed = 8
n_train = 8
n_eval = 4

[generate]
k = 2
max_tokens = 8

[train]
settings = { lr = 3e-3, batch_size = 8 }

[eval]
k = 2

[loop]
rounds = 1
"""


def files_config(tmp: Path, extra: str = "", *, seed: bool = True) -> Path:
    (tmp / "train.jsonl").write_text(json.dumps({"id": "a", "prompt": "1+1", "answer": "2"}) + "\n")
    (tmp / "eval.jsonl").write_text(json.dumps({"id": "b", "prompt": "2+2", "answer": "4"}) + "\n")
    (tmp / "seed.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "1+2"},
                                                             {"role": "assistant", "content": "3"}]}) + "\n")
    text = BASE.replace('builtin = "addition"\nn_seed = 8\nn_train = 8\nn_eval = 4',
                        'train = "train.jsonl"\neval = "eval.jsonl"' + ('\nseed_sft = "seed.jsonl"' if seed else ""))
    path = tmp / "run.toml"
    path.write_text(text + extra)
    return path


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["run", *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def refused(capsys, tmp: Path, config: Path) -> str:
    code, err = run_cli(capsys, str(config), "--out", str(tmp / "out"))
    assert code == 1
    assert not (tmp / "out").exists()  # refused at load: nothing made, no model built
    return err


def edit(config: Path, old: str, new: str) -> Path:
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new))
    return config


def line_of(config: Path, needle: str) -> int:
    return next(n for n, line in enumerate(config.read_text().splitlines(), 1) if needle in line)


def test_builtin_config_loads(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(BASE)
    assert load_run_config(path).train.settings == {"lr": 3e-3, "batch_size": 8}


def test_a_mistyped_trainer_setting_is_refused_with_a_suggestion_and_its_line(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace("batch_size = 8", "bacth_size = 8"))
    err = refused(capsys, tmp_path, path)
    assert f"run.toml:{line_of(path, 'bacth_size')}" in err and "bacth_size" in err and "did you mean batch_size" in err


def test_a_trainer_setting_of_the_wrong_type_is_refused(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace("batch_size = 8", 'batch_size = "big"'))
    err = refused(capsys, tmp_path, path)
    assert "settings" in err and "batch_size" in err and "big" in err


def test_a_setting_of_another_algorithm_is_refused_with_the_reason(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace("batch_size = 8", "batch_size = 8, beta = 0.2"))
    err = refused(capsys, tmp_path, path)
    assert "beta" in err and "only DPO reads it" in err and "'sft'" in err


def test_lora_settings_have_no_effect_in_the_loop_and_are_refused(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace("batch_size = 8", "batch_size = 8, lora = true"))
    assert "LoRA" in refused(capsys, tmp_path, path)


def test_an_unknown_section_key_names_the_line_and_the_near_miss(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace("[eval]\nk = 2", "[eval]\nkk = 2"))
    err = refused(capsys, tmp_path, path)
    assert f"run.toml:{line_of(path, 'kk = 2')}" in err and "eval.kk" in err and "did you mean k" in err


def test_seed_sft_next_to_builtin_is_refused_with_the_reason(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace('builtin = "addition"', 'builtin = "addition"\nseed_sft = "seed.jsonl"'))
    err = refused(capsys, tmp_path, path)
    assert f"run.toml:{line_of(path, 'seed_sft')}" in err and "seed_sft" in err and "builtin" in err


@pytest.mark.parametrize("key, value", [("device", '"cuda"'), ("base_url", '"http://x/v1"'), ("timeout_s", "5"),
                                        ("hourly_usd", "1.0")])
def test_model_fields_the_loop_ignores_are_refused(tmp_path, capsys, key, value):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace('backend = "local"', f'backend = "local"\n{key} = {value}'))
    err = refused(capsys, tmp_path, path)
    assert f"run.toml:{line_of(path, key + ' =')}" in err and f"{key}: has no effect" in err


def test_a_remote_backend_is_refused_at_load(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace('backend = "local"', 'backend = "openai"'))
    assert 'backend = "local"' in refused(capsys, tmp_path, path)


def test_builtin_only_keys_next_to_task_files_are_refused(tmp_path, capsys):
    config = edit(files_config(tmp_path), 'eval = "eval.jsonl"', 'eval = "eval.jsonl"\ndigits = 3')
    assert "digits" in refused(capsys, tmp_path, config)


def test_a_missing_seed_sft_file_is_named_with_its_key(tmp_path, capsys):
    config = edit(files_config(tmp_path), '"seed.jsonl"', '"nope.jsonl"')
    err = refused(capsys, tmp_path, config)
    assert "nope.jsonl" in err and "[tasks] seed_sft" in err and "[generate] tasks" not in err


def test_a_missing_eval_file_gets_advice_for_the_eval_key(tmp_path, capsys):
    config = edit(files_config(tmp_path), '"eval.jsonl"', '"gone.jsonl"')
    err = refused(capsys, tmp_path, config)
    assert "gone.jsonl" in err and "[tasks] eval" in err and "[generate] tasks" not in err


def test_a_seed_row_without_an_assistant_turn_names_the_file_and_line(tmp_path, capsys):
    config = files_config(tmp_path)
    with (tmp_path / "seed.jsonl").open("a") as handle:
        handle.write(json.dumps({"messages": [{"role": "user", "content": "5+5"}]}) + "\n")
    code, err = run_cli(capsys, str(config), "--out", str(tmp_path / "out"))
    assert code == 1 and "seed.jsonl:2" in err and "assistant" in err
    assert not (tmp_path / "out" / "config.json").exists()


def test_cold_start_keys_without_seed_rows_are_refused(tmp_path, capsys):
    config = edit(files_config(tmp_path, seed=False), "[train]\n", "[train]\ncold_start_epochs = 2\n")
    assert "cold start" in refused(capsys, tmp_path, config)


def test_select_keys_the_algorithm_does_not_read_are_refused(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace("[train]\n", '[select]\nmax_pairs = 2\n\n[train]\n'))
    assert "only DPO reads it" in refused(capsys, tmp_path, path)


def test_unknown_workflows_are_refused_at_load(tmp_path, capsys):  # every known one runs (selfplay.pipeline.sample)
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace("max_tokens = 8", 'max_tokens = 8\nworkflow = "nope"'))
    assert "unknown workflow" in refused(capsys, tmp_path, path)


def test_positional_and_flag_config_are_the_same_and_a_missing_one_is_clear(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE.replace("bat", "bta"))
    a = run_cli(capsys, str(path), "--out", str(tmp_path / "o"))
    b = run_cli(capsys, "--config", str(path), "--out", str(tmp_path / "o"))
    assert a == b and a[0] == 1 and "did you mean batch_size" in a[1]
    code, err = run_cli(capsys, "--out", str(tmp_path / "o"))
    assert code == 1 and "no config" in err


def fake_run_dir(tmp: Path, config_path: Path, *, produced: bool) -> Path:
    out = tmp / "out"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(load_run_config(config_path).model_dump(mode="json"), indent=2))
    with RunStore(out) as store:
        if produced:
            store.put_round(0, "done", {"round": 0})
    return out


@pytest.mark.parametrize("override, key", [("eval.k=3", "eval.k"), ("generate.k=3", "generate.k"),
                                           ("train.algorithm=\"dpo\"", "train.algorithm"),
                                           ("tasks.n_eval=5", "tasks.n_eval"), ("model.name=\"tiny-llama\"", "model.name")])
def test_resume_with_a_changed_pinned_key_is_refused_and_config_json_untouched(tmp_path, capsys, override, key):
    path = tmp_path / "run.toml"
    path.write_text(BASE)
    out = fake_run_dir(tmp_path, path, produced=True)
    before = (out / "config.json").read_bytes()
    code, err = run_cli(capsys, str(path), "--out", str(out), "--set", override)
    assert code == 1 and key in err and "another --out" in err
    assert (out / "config.json").read_bytes() == before


def test_budget_concurrency_and_rounds_are_not_pinned(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(BASE)
    out = fake_run_dir(tmp_path, path, produced=True)
    changed = load_run_config(path, ["budget.usd=2.0", "generate.verify_concurrency=7", "loop.rounds=5",
                                     "local.threads=2", "local.max_batch_rows=32"])
    check_resume(changed, out, PINNED)  # no refusal
    with pytest.raises(Exception, match="generate.temperature"):
        check_resume(load_run_config(path, ["generate.temperature=0.5"]), out, PINNED)


def test_a_run_dir_that_produced_nothing_never_blocks_a_corrected_config(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(BASE)
    out = fake_run_dir(tmp_path, path, produced=False)
    assert not run_dir_produced(out)
    check_resume(load_run_config(path, ["generate.k=3", "eval.k=4"]), out, PINNED)
    with RunStore(out) as store:
        store.put_round(0, "done", {"round": 0})
    assert run_dir_produced(out)


def test_prices_have_no_effect_in_the_loop_and_are_refused(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text(BASE + '\n[prices."micro-llama"]\ninput = 1.0\noutput = 2.0\n')
    err = refused(capsys, tmp_path, path)
    assert "[local] hourly_usd" in err and f"run.toml:{line_of(path, '[prices.')}" in err
