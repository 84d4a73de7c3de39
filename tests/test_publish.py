"""`LoraPublisher` against a real `selfplay serve` subprocess on 127.0.0.1: publish, keep two rounds, re-publish
after a restart, and a clear UserError naming the endpoint when the server refuses or is gone."""

import os
import signal
import subprocess
import sys

import openai
import pytest

from selfplay.core.errors import EndpointLost, UserError
from selfplay.policy.publish import LoraPublisher
from tests.test_serve import REPO, _read_announce
from tests.test_serve_lora import ASK, make_adapter
from tests.tiny_model import save_tiny


def start_serve(checkpoint: str, port: int = 0):
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "selfplay", "serve", "--model", checkpoint, "--port", str(port),
                             "--served-model-name", "base", "--threads", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    line = _read_announce(proc)
    return proc, line.split("listening on ")[1].split()[0]


def stop(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, proc.stderr.read()


def greedy(base_url: str, model: str) -> str:
    client = openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=30)
    reply = client.chat.completions.create(model=model, messages=ASK, max_tokens=10, temperature=0)
    return reply.choices[0].message.content


@pytest.mark.slow
def test_publish_rounds_and_republish_after_a_restart(tmp_path):
    checkpoint = save_tiny(str(tmp_path / "ckpt"))
    adapters = [make_adapter(str(tmp_path / f"r{r}"), seed=r + 1) for r in range(4)]
    proc, base_url = start_serve(checkpoint)
    try:
        publisher = LoraPublisher(base_url, api_key="unused")
        assert publisher.publish(0, adapters[0]) == "round-0"
        assert publisher.publish(1, adapters[1]) == "round-1"
        assert publisher.served() == ["base", "round-0", "round-1"]
        assert publisher.publish(2, adapters[2]) == "round-2"
        assert publisher.served() == ["base", "round-1", "round-2"]  # round 0 = r-2 unloaded
        round2 = greedy(base_url, "round-2")
        assert round2 != greedy(base_url, "base")
        assert publisher.ensure(2, adapters[2]) == "round-2"  # already served: nothing to do
        assert publisher.served() == ["base", "round-1", "round-2"]
        assert publisher.publish(2, adapters[3]) == "round-2"  # a re-trained round replaces the old weights
        assert greedy(base_url, "round-2") == greedy(base_url, "round-2") != round2
        assert publisher.publish(2, adapters[2]) == "round-2"
    finally:
        stop(proc)

    port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    proc, again_url = start_serve(checkpoint, port)  # a restarted server has forgotten its adapters
    try:
        publisher = LoraPublisher(again_url)
        assert publisher.served() == ["base"]
        assert publisher.ensure(2, adapters[2]) == "round-2"
        assert publisher.served() == ["base", "round-2"]
        assert greedy(again_url, "round-2") == round2

        with pytest.raises(UserError, match=r"/v1/load_lora_adapter: the server refused .*HTTP 400"):
            broken = tmp_path / "broken"
            broken.mkdir()
            (broken / "adapter_config.json").write_text("{\"peft_type\": \"LORA\"}")
            publisher.publish(3, broken)
        with pytest.raises(UserError, match="no adapter_config.json"):
            publisher.publish(3, tmp_path / "nowhere")
    finally:
        stop(proc)
    with pytest.raises(EndpointLost, match=r"GET http://127.0.0.1:\d+/v1/models: cannot .* is the server running"):
        LoraPublisher(again_url).ensure(2, adapters[2])
