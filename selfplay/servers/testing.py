"""Test helpers for users of selfplay: a mock OpenAI-compatible LLM server, as a context manager and fixtures.

What it is for: starting `selfplay.servers.mock` on a free port of 127.0.0.1, waiting until it answers, and
stopping it afterwards, in a background thread (fast, the default) or as a subprocess
(`python -m selfplay mock-server`, for tests that must kill -9 things). Use:

    from selfplay.servers.testing import MockServer
    with MockServer(script="tests/data/mock_math.toml", faults={"429": 0.1}, seed=1) as server:
        client = server.client()              # openai.OpenAI(base_url=server.base_url, api_key="mock")
        ...; assert server.stats()["duplicate_replies"] == 0

and in a conftest.py: `from selfplay.servers.testing import mock_llm, mock_llm_factory`. `mock_llm` is a server
with the built-in arithmetic script; parametrize it indirectly to change options
(`@pytest.mark.parametrize("mock_llm", [{"faults": 0.2}], indirect=True)`); `mock_llm_factory(**options)`
starts as many servers as a test wants, all stopped at teardown.
Options: script (None = built-in; a .toml/.json path; a dict shaped like the file; a Script), seed,
latency_ms, faults (dict kind -> rate over "429", "500", "timeout", "malformed", "truncate"; or one float
split evenly over the five), hang_s, max_n, usage, retry_after_ms, max_consecutive_faults, subprocess.
What it does NOT do: patch clients or environment variables; point your code at `server.base_url`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess as sp
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import httpx

from selfplay.servers.mock import FAULT_KINDS, FaultRates, MockConfig, Script, default_script, load_script
from selfplay.servers.mock import script_from_data

__all__ = ["MockServer", "mock_llm", "mock_llm_factory"]


def _fault_rates(faults: Any) -> FaultRates:
    if faults is None:
        return FaultRates()
    if isinstance(faults, (int, float)):
        return FaultRates({kind: float(faults) / len(FAULT_KINDS) for kind in FAULT_KINDS})
    return FaultRates({str(k): float(v) for k, v in dict(faults).items()})


def _script(script: Any) -> Script:
    if script is None:
        return default_script()
    if isinstance(script, Script):
        return script
    if isinstance(script, dict):
        return script_from_data(script)
    return load_script(script)


class MockServer:
    """A running (after `start()` or `with`) mock LLM endpoint; see the module docstring for options."""

    def __init__(self, script: Any = None, *, seed: int = 0, latency_ms: float = 0.0, faults: Any = None,
                 hang_s: float = 30.0, max_n: int | None = None, usage: bool = True,
                 retry_after_ms: float = 20.0, max_consecutive_faults: int = 3, subprocess: bool = False,
                 host: str = "127.0.0.1", start_timeout: float = 20.0, batch_latency_s: float = 0.0,
                 batch_outcome: str = "completed"):
        self.script_source = script
        self.config = MockConfig(script=_script(script), seed=seed, latency_ms=latency_ms,
                                 faults=_fault_rates(faults), hang_s=hang_s, max_n=max_n, usage=usage,
                                 retry_after_s=retry_after_ms / 1000.0,
                                 max_consecutive_faults=max_consecutive_faults, batch_latency_s=batch_latency_s,
                                 batch_outcome=batch_outcome)
        self.use_subprocess = subprocess
        self.host = host
        self.start_timeout = start_timeout
        self.port: int | None = None
        self._thread_server = None
        self._process: sp.Popen | None = None
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        self._stderr = None
        self.returncode: int | None = None  # of the subprocess, once stopped

    # ---- addresses and stats -------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the mock server is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url (ends in /v1)."""
        return self.url + "/v1"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stats(self) -> dict:
        """GET /mock/stats (shape documented in selfplay.servers.mock.stats)."""
        return self._control("GET", "/mock/stats")

    def reset(self) -> None:
        """POST /mock/reset: zero the stats and the per-request attempt counters of fault injection."""
        self._control("POST", "/mock/reset")

    def _control(self, method: str, path: str) -> dict:
        with httpx.Client(trust_env=False, timeout=10.0) as http:
            response = http.request(method, self.url + path)
            response.raise_for_status()
            return response.json()

    def client(self, **kwargs):
        """An `openai.OpenAI` client for this server (api_key "mock"; kwargs pass through)."""
        import openai
        return openai.OpenAI(base_url=self.base_url, api_key="mock", **kwargs)

    def async_client(self, **kwargs):
        """An `openai.AsyncOpenAI` client for this server."""
        import openai
        return openai.AsyncOpenAI(base_url=self.base_url, api_key="mock", **kwargs)

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "MockServer":
        if self.use_subprocess:
            self._start_process()
        else:
            from selfplay.servers.mock.server import BackgroundServer
            self._thread_server = BackgroundServer(self.config, host=self.host).start(self.start_timeout)
            self.port = self._thread_server.port
        return self

    def stop(self) -> None:
        if self._thread_server is not None:
            self._thread_server.stop()
            self._thread_server = None
        if self._process is not None:
            self._stop_process(signal.SIGTERM)
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def kill(self) -> None:
        """SIGKILL the subprocess server (subprocess mode only), as a crash would."""
        if self._process is None:
            raise RuntimeError("kill() needs MockServer(subprocess=True)")
        self._stop_process(signal.SIGKILL)

    def __enter__(self) -> "MockServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- subprocess mode ---------------------------------------------------------------------
    def command(self) -> list[str]:
        """The `python -m selfplay mock-server ...` command line this server runs in subprocess mode."""
        c = self.config
        cmd = [sys.executable, "-m", "selfplay", "mock-server", "--host", self.host, "--port", "0",
               "--seed", str(c.seed), "--latency-ms", str(c.latency_ms), "--hang-s", str(c.hang_s),
               "--retry-after-ms", str(c.retry_after_s * 1000.0),
               "--max-consecutive-faults", str(c.max_consecutive_faults),
               "--batch-latency-s", str(c.batch_latency_s), "--batch-outcome", c.batch_outcome]
        for kind, rate in c.faults.rates.items():
            cmd += [f"--fault-{kind}", repr(float(rate))]
        if c.max_n is not None:
            cmd += ["--max-n", str(c.max_n)]
        if not c.usage:
            cmd.append("--no-usage")
        script_path = self._script_path()
        if script_path is not None:
            cmd += ["--script", script_path]
        return cmd

    def _script_path(self) -> str | None:
        source = self.script_source
        if source is None:
            return None
        if isinstance(source, (str, Path)):
            return str(Path(source).resolve())
        if isinstance(source, dict):
            if self._tmpdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="selfplay-mock-")
            path = Path(self._tmpdir.name) / "script.json"
            path.write_text(json.dumps(source), encoding="utf-8")
            return str(path)
        raise TypeError("subprocess mode needs the script as a path or a dict, not a Script object")

    def _start_process(self) -> None:
        import selfplay
        env = dict(os.environ)
        root = str(Path(selfplay.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        self._stderr = tempfile.TemporaryFile(mode="w+")  # a file, not a pipe: it never fills up and blocks
        self._process = sp.Popen(self.command(), stdout=sp.PIPE, stderr=self._stderr, text=True, env=env)
        line = self._read_ready_line()
        if line is None:
            err = self._stop_process(signal.SIGKILL)
            raise RuntimeError(f"mock-server subprocess did not start: {err.strip()[-2000:]}")
        self.port = int(line.rsplit(":", 1)[1].split("/", 1)[0])

    def _read_ready_line(self) -> str | None:
        box: dict = {}

        def read() -> None:
            for line in self._process.stdout:
                if "listening on" in line:
                    box["line"] = line.strip()
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        return box.get("line")

    def _stop_process(self, sig: int) -> str:
        process, self._process = self._process, None
        if process.poll() is None:
            process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except sp.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        self.returncode = process.returncode
        self._stderr.seek(0)
        err = self._stderr.read()
        self._stderr.close()
        return err


try:
    import pytest
except ImportError:  # pytest is a dev dependency; MockServer works without it
    pytest = None

if pytest is not None:
    @pytest.fixture
    def mock_llm(request):
        """A MockServer with the built-in script (or `request.param` options when parametrized indirectly)."""
        options = dict(getattr(request, "param", None) or {})
        with MockServer(**options) as server:
            yield server

    @pytest.fixture
    def mock_llm_factory():
        """`start(**options) -> MockServer`; every server it started is stopped at teardown."""
        servers: list[MockServer] = []

        def start(script: Any = None, **options) -> MockServer:
            server = MockServer(script, **options).start()
            servers.append(server)
            return server

        yield start
        for server in servers:
            server.stop()
