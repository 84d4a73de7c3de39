"""Dataset reading and validation: errors name the file and the row and say how to fix."""

import json

import pytest

from trainer.config import TrainConfig, load_config
from trainer.data import DataError, load_dataset_file, read_rows, validate_groups, validate_preference


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


GOOD_SFT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}


def test_good_sft_file_and_parquet_round_trip(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    assert load_dataset_file(write_jsonl(tmp_path / "a.jsonl", [GOOD_SFT, GOOD_SFT]), "sft") == [GOOD_SFT] * 2
    pq.write_table(pa.Table.from_pylist([GOOD_SFT]), tmp_path / "a.parquet")
    assert load_dataset_file(str(tmp_path / "a.parquet"), "sft") == [GOOD_SFT]


@pytest.mark.parametrize("bad_row, message", [
    ({"txt": "x"}, "row 2: missing field(s) messages"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "row 2: 'messages' has no assistant message"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "row 2: messages[0] has role 'robot'"),
    ({"messages": "hello"}, "row 2: 'messages' must be a non-empty list"),
    ("{not json", "row 2: not valid JSON"),
    ("[1, 2]", "row 2: expected a JSON object"),
])
def test_bad_sft_rows_name_file_and_row(tmp_path, bad_row, message):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD_SFT, bad_row])
    with pytest.raises(DataError) as info:
        load_dataset_file(path, "sft")
    assert str(info.value).startswith(path) and message in str(info.value)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(DataError, match="e.jsonl: the file has no rows"):
        read_rows(str(tmp_path / "e.jsonl"))
    with pytest.raises(DataError, match="no such file"):
        read_rows(str(tmp_path / "missing.jsonl"))


def test_preference_rows():
    good = {"prompt": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "b"}]}
    assert validate_preference([good, {"prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(DataError, match="row 1: missing field.*rejected"):
        validate_preference([{"prompt": "q", "chosen": "a"}], "p.jsonl")
    with pytest.raises(DataError, match="all be strings or all be message lists"):
        validate_preference([{**good, "chosen": "a"}])


def test_group_rows():
    assert validate_groups([{"prompt": "q", "completions": ["a", "b"], "rewards": [1, 0.5]}])
    with pytest.raises(DataError, match="row 1: 'rewards' must be a list with one number per completion"):
        validate_groups([{"prompt": "q", "completions": ["a", "b"], "rewards": [1]}], "g.jsonl")
    with pytest.raises(DataError, match="not a finite number"):
        validate_groups([{"prompt": "q", "completions": ["a"], "rewards": [float("nan")]}])
    with pytest.raises(DataError, match="non-empty list of strings"):
        validate_groups([{"prompt": "q", "completions": [], "rewards": []}])


def test_config_files_and_unknown_keys(tmp_path):
    (tmp_path / "t.toml").write_text("[train]\nlr = 0.002\nepochs = 3\nlora = true\n")
    config = load_config(str(tmp_path / "t.toml"))
    assert (config.lr, config.epochs, config.lora) == (0.002, 3, True)
    assert config.replace(lr=None, epochs=5).epochs == 5 and config.replace(lr=None).lr == 0.002
    (tmp_path / "c.json").write_text('{"lr": 0.1, "learning_rate": 1}')
    with pytest.raises(ValueError, match="c.json: unknown key.*learning_rate"):
        load_config(str(tmp_path / "c.json"))
    with pytest.raises(ValueError, match="mixed_precision"):
        TrainConfig(mixed_precision="fp8")
