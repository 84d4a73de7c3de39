"""Dataset rows have the TRL shapes, and Parquet round-trips them."""

import json

import pyarrow.parquet as pq
import pytest

from selfplay.pipeline.datasets import preference_row, prm_row, rl_row, sft_row, write_dataset
from tests.candidates import verified

P = ({"role": "user", "content": "What is 2+2?"},)


def cand(i, text, passed):
    return verified("t", i, text, passed, prompt=P)


def test_rows_have_trl_shapes():
    good, bad = cand(0, "4", True), cand(1, "5", False)
    assert sft_row(good) == {"messages": [P[0], {"role": "assistant", "content": "4"}], "candidate_ids": ["r0/direct/t/0"]}
    pref = preference_row(good, bad)
    assert pref["prompt"] == [P[0]] and pref["chosen"][0]["content"] == "4" and pref["rejected"][0]["content"] == "5"
    assert pref["candidate_ids"] == ["r0/direct/t/0", "r0/direct/t/1"]
    assert rl_row([good, bad], [1.0, 0.0]) == {"prompt": [P[0]], "completions": ["4", "5"], "rewards": [1.0, 0.0],
                                               "candidate_ids": ["r0/direct/t/0", "r0/direct/t/1"]}
    assert prm_row("q", ["a", "b"], [True, False]) == {"prompt": "q", "completions": ["a", "b"], "labels": [True, False]}
    with pytest.raises(ValueError):
        prm_row("q", ["a"], [True, False])


def test_jsonl_and_parquet_round_trip(tmp_path):
    rows = [sft_row(cand(0, "4", True)), sft_row(cand(1, "four", True))]
    paths = write_dataset(rows, tmp_path / "sft")
    assert [json.loads(line) for line in open(paths["jsonl"])] == rows
    assert pq.read_table(paths["parquet"]).to_pylist() == rows
