"""`selfplay demo --serve --quick`: the self-improvement arm through a `selfplay serve` process the demo starts
and stops (a LoRA adapter per round), the control arm local from the same cold start, the same demo.json."""

import json

from selfplay.core.errors import EXIT_USER_ERROR
from tests.test_cli_run import selfplay


def test_demo_serve_quick_writes_demo_json_and_stops_its_server(tmp_path):
    out = tmp_path / "demo"
    result = selfplay("demo", "--serve", "--quick", "--rounds", "1", "--out", str(out), "--no-progress")
    assert result.returncode == 0, result.stderr
    demo = json.loads((out / "demo.json").read_text())
    assert demo["served"] is True and len(demo["self_improve"]) == 1 and len(demo["control"]) == 1
    assert 0.0 <= demo["cold_start"] <= 1.0 and demo["train_steps_per_round"] == [4]
    improve = json.loads((out / "self_improve" / "rounds.json").read_text())["rounds"]
    assert (out / "self_improve" / "checkpoints" / "round-1" / "adapter" / "adapter_config.json").is_file()
    assert improve[1]["samples"] > 0 and "cold-start" not in improve[1].get("checkpoint", "")
    control = json.loads((out / "control" / "rounds.json").read_text())["rounds"]
    assert control[0]["eval_pass@1"] == json.loads((out / "cold_start" / "rounds.json").read_text())["rounds"][0][
        "eval_pass@1"]  # the control arm starts from the shared cold start
    assert "selfplay serve stopped" in (out / "serve.log").read_text()  # the demo stopped its server
    assert "self-improvement (served)" in result.stdout


def test_demo_server_vllm_without_vllm_fails_before_any_work(tmp_path):
    """`--server vllm` in a Python without vLLM: one message naming the fix, exit 1, nothing written (the cold start
    would cost minutes before the server start failed); `--server` without `--serve` is refused too."""
    import importlib.util

    import pytest

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vLLM is installed here: tests/vllm/test_vllm_demo.py runs the real thing")
    out = tmp_path / "demo"
    result = selfplay("demo", "--serve", "--server", "vllm", "--quick", "--out", str(out), "--no-progress")
    assert result.returncode == EXIT_USER_ERROR and "Traceback" not in result.stderr
    assert "vLLM is not installed in this Python" in result.stderr and "make venv-vllm" in result.stderr
    assert not out.exists()
    lone = selfplay("demo", "--server", "vllm", "--quick", "--out", str(out), "--no-progress")
    assert lone.returncode == EXIT_USER_ERROR and "add --serve or drop --server" in lone.stderr and not out.exists()
