"""`selfplay mock-server` end to end: a real subprocess, hit with the openai client, stopped and killed."""

from __future__ import annotations

import signal
from pathlib import Path

import openai
import pytest

from selfplay.cli import main
from selfplay.servers.testing import MockServer

AGENT = Path(__file__).parent / "data" / "mock_agent.toml"


def test_cli_serves_a_script_with_faults_until_sigterm_then_exits_0():
    server = MockServer(script=AGENT, subprocess=True, faults={"429": 0.5}, seed=4, max_n=4)
    with server:
        assert server.pid is not None and server.base_url.endswith("/v1")
        client = server.client(max_retries=4)  # SDK retries, honouring Retry-After, get through
        outs = [client.chat.completions.create(model="policy", messages=[
            {"role": "user", "content": f"What is {i} + 1?"}], n=3) for i in range(8)]
        assert [o.choices[0].message.content for o in outs][:2] == [r"0 + 1 = 1. \boxed{1}",
                                                                    r"1 + 1 = 2. \boxed{2}"]
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="policy", messages=[{"role": "user", "content": "hi"}], n=5)
        stats = server.stats()
        assert stats["completions"] == 8 and stats["faults_total"] > 0 and stats["duplicate_replies"] == 0
    assert server.returncode == 0  # SIGTERM is a clean stop


def test_kill_9_leaves_nothing_running():
    server = MockServer(subprocess=True).start()
    assert server.client(max_retries=0).models.list().data[0].id == "mock-model"
    server.kill()
    assert server.returncode == -signal.SIGKILL
    with pytest.raises(openai.APIConnectionError):
        server.client(max_retries=0, timeout=2).models.list()
    server.stop()  # idempotent after a kill


def test_malformed_script_and_bad_flags_exit_1_naming_the_culprit(tmp_path, capsys):
    bad = tmp_path / "mock_bad.toml"
    bad.write_text('[[rules]]\nmatch = "x"\nreply = "a"\n\n[[rules]]\nname = "oops"\nmatch = "(unclosed"\nreply = "b"\n')
    assert main(["mock-server", "--script", str(bad), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert str(bad) in err and "rules[1] ('oops') at line 5" in err and "not a valid regex" in err
    assert main(["mock-server", "--fault-429", "0.7", "--fault-500", "0.7", "--port", "0"]) == 1
    assert "sum to" in capsys.readouterr().err
