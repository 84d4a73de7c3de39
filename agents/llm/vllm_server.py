"""Switching the model a vLLM *server* serves between rounds, for loops that reach it through the `openai` backend.

What it is for: a self-improvement loop trains a new LoRA adapter each round and must have the server answer with
it next, without stopping the loop. Two documented ways:
  1. runtime LoRA loading: start the server with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve BASE
     --enable-lora --max-lora-rank R`; then `load_lora_adapter(base_url, name, path)` POSTs
     `{"lora_name", "lora_path"}` to `/v1/load_lora_adapter`, and requests with `model=name` use it;
     `unload_lora_adapter` POSTs `{"lora_name"}` to `/v1/unload_lora_adapter` to free the previous one.
     `ServedModelSwitcher(mode="lora").switch(round, path)` does load-new-then-unload-old and returns the new
     model name for the `openai` backend.
  2. restart: `restart_server(command, health_url)` runs a configured command (e.g. a systemd restart or a
     script that relaunches `vllm serve NEW_CHECKPOINT`) and waits until `/health` answers 200; for full
     checkpoints, or servers started without runtime LoRA updating.
`base_url` is the OpenAI base URL as the `openai` backend uses it (`http://host:8000/v1`) or the bare server URL.
What it does not do: start vLLM itself the first time, copy adapters to the server's disk (the path must be
readable by the server process), or talk to anything but these endpoints. Tested against a small FastAPI fake of
these endpoints (tests/test_vllm_server.py), `selfplay serve`, which implements them (tests/test_publish.py), and
a real vLLM 0.32.0 server, its CPU build (tests/vllm/test_vllm_lora.py, make test-vllm).
"""

from __future__ import annotations

import shlex
import subprocess
import time
from typing import Literal, Sequence

import httpx


class VLLMServerError(RuntimeError):
    """The server refused or did not answer an adapter or restart operation."""


def server_root(base_url: str) -> str:
    """`http://h:8000/v1` or `http://h:8000/` -> `http://h:8000` (the LoRA and health routes live at the root)."""
    root = base_url.rstrip("/")
    return root[:-3] if root.endswith("/v1") else root


def load_lora_adapter(base_url: str, name: str, path: str, *, api_key: str | None = None,
                      load_inplace: bool = False, timeout_s: float = 300.0) -> None:
    """Ask the server to load the adapter at `path` (a path on the server's disk) under model name `name`."""
    body: dict[str, object] = {"lora_name": name, "lora_path": path}
    if load_inplace:  # newer vLLM: replace the weights of an adapter already loaded under `name`
        body["load_inplace"] = True
    _post(base_url, "/v1/load_lora_adapter", body, api_key, timeout_s)


def unload_lora_adapter(base_url: str, name: str, *, api_key: str | None = None, timeout_s: float = 60.0) -> None:
    _post(base_url, "/v1/unload_lora_adapter", {"lora_name": name}, api_key, timeout_s)


def served_models(base_url: str, *, api_key: str | None = None, timeout_s: float = 30.0) -> list[str]:
    """Model ids from `/v1/models` (the base model and every loaded adapter)."""
    response = httpx.get(f"{server_root(base_url)}/v1/models", headers=_headers(api_key), timeout=timeout_s)
    _raise_for(response, "/v1/models")
    return [m["id"] for m in response.json().get("data", [])]


def restart_server(command: str | Sequence[str], health_url: str, *, timeout_s: float = 600.0,
                   poll_s: float = 1.0) -> None:
    """Run `command` (must exit 0; a string is split with shlex, no shell), then wait for `health_url` to be 200.

    The command should return once the restart is under way (e.g. `systemctl restart vllm`); a command that
    runs the server in the foreground never returns.
    """
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise VLLMServerError(f"restart command {argv!r} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    wait_healthy(health_url, timeout_s=timeout_s, poll_s=poll_s)


def wait_healthy(health_url: str, *, timeout_s: float = 600.0, poll_s: float = 1.0) -> None:
    """Poll `health_url` until it answers 200, or raise `VLLMServerError` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = httpx.get(health_url, timeout=max(poll_s, 1.0))
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = type(exc).__name__
        time.sleep(poll_s)
    raise VLLMServerError(f"{health_url} was not healthy within {timeout_s} s (last: {last})")


class ServedModelSwitcher:
    """Per-round switch of what a vLLM server serves; `switch(round, path)` returns the model name to send next.

    mode "lora": load `"{prefix}-{round}"` from `path`, then unload the previous round's adapter (if any).
    mode "restart": run `restart_command` (which must make the server serve `path`, e.g. a script reading it
    from its first argument: `{path}` in the command is replaced), wait for health, return `served_name`.
    """

    def __init__(self, base_url: str, *, mode: Literal["lora", "restart"] = "lora", prefix: str = "round",
                 restart_command: str | None = None, served_name: str | None = None,
                 api_key: str | None = None, timeout_s: float = 600.0) -> None:
        if mode == "restart" and not restart_command:
            raise ValueError("mode='restart' needs restart_command")
        self.base_url = base_url
        self.mode = mode
        self.prefix = prefix
        self.restart_command = restart_command
        self.served_name = served_name
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.current: str | None = None

    def switch(self, round_index: int, path: str) -> str:
        if self.mode == "restart":
            command = self.restart_command.replace("{path}", shlex.quote(path))  # type: ignore[union-attr]
            restart_server(command, f"{server_root(self.base_url)}/health", timeout_s=self.timeout_s)
            self.current = self.served_name or path
            return self.current
        name = f"{self.prefix}-{round_index}"
        load_lora_adapter(self.base_url, name, path, api_key=self.api_key, timeout_s=self.timeout_s)
        previous, self.current = self.current, name
        if previous and previous != name:
            unload_lora_adapter(self.base_url, previous, api_key=self.api_key)
        return name


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _post(base_url: str, route: str, body: dict[str, object], api_key: str | None, timeout_s: float) -> None:
    url = f"{server_root(base_url)}{route}"
    try:
        response = httpx.post(url, json=body, headers=_headers(api_key), timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise VLLMServerError(f"{url}: {type(exc).__name__}: {exc}") from exc
    _raise_for(response, route)


def error_message(response: httpx.Response) -> str | None:
    """The server's own error message (OpenAI's `{"error": {"message"}}` or vLLM's older flat `{"message"}`)."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    message = error.get("message") if isinstance(error, dict) else body.get("message")
    return message if isinstance(message, str) and message else None


def _raise_for(response: httpx.Response, route: str) -> None:
    message = error_message(response) if response.status_code >= 400 else None
    if message:  # the route exists and refused (vLLM: 404 for an unknown adapter or a missing path)
        raise VLLMServerError(f"{route}: HTTP {response.status_code}: {message}")
    if response.status_code == 404 and "lora" in route:
        raise VLLMServerError(f"{route} is not available: start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True "
                              f"and --enable-lora")
    if response.status_code >= 400:
        raise VLLMServerError(f"{route}: HTTP {response.status_code}: {response.text[:500]}")
