"""`selfplay demo --serve --server vllm --quick`: the served demo against a real vLLM server the command starts and
stops (its own process group), a LoRA adapter published per round through vLLM's runtime LoRA API."""

import json
import subprocess
import sys


def test_demo_serve_on_real_vllm_quick(tmp_path):
    out = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "selfplay", "demo", "--serve", "--server", "vllm", "--quick",
                             "--rounds", "1", "--out", str(out), "--no-progress"],
                            capture_output=True, text=True, timeout=840, env={**__import__("os").environ,
                                                                             "SELFPLAY_TORCH_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    demo = json.loads((out / "demo.json").read_text())
    assert demo["served"] is True and demo["server"] == "vllm" and len(demo["self_improve"]) == 1
    improve = json.loads((out / "self_improve" / "rounds.json").read_text())["rounds"]
    assert improve[1]["samples"] > 0
    log = (out / "serve.log").read_text()
    assert "vllm.entrypoints.openai.api_server" in log or "Loaded new LoRA adapter" in log
    assert "Loaded new LoRA adapter" in log  # the round's adapter went through vLLM's runtime LoRA API
    assert "self-improvement (served)" in result.stdout
