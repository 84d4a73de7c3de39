"""Publishing each round's LoRA adapter to an OpenAI-compatible server with vLLM's runtime LoRA API.

What it is for: a served policy trains an adapter per round and samples from a server (vLLM started with
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve BASE --enable-lora`, or `selfplay serve`).
`LoraPublisher(base_url, api_key).publish(r, adapter_dir)` loads the adapter as model `round-r`
(`POST /v1/load_lora_adapter`; an adapter already loaded under that name is unloaded and loaded again, so a
re-trained round is never served stale), unloads `round-(r-2)` when the server lists it, and returns the model
name to sample with. `ensure(r, adapter_dir)` re-publishes only when `/v1/models` does not list `round-r` (a
restarted server forgets runtime adapters): call it before sampling on resume.
With `tag` (the served policy passes a digest of the adapter's weights) the name is `round-r-TAG`: a name then
means one set of weights, so a request cache keyed by it never answers for other weights, and publishing also
unloads this prefix's other adapters of round r and every one of round <= r-2.
A refusal is a `UserError` naming the endpoint and the fix (exit 1, no traceback); a server that cannot be reached
is `EndpointLost` (exit 4: start it and run the same command; the served policy's `prepare` reports it as a
`UserError` when the job has not started yet).
What it does not do: copy the adapter to the server's disk (`adapter_dir` must be readable by the server
process; it is sent as an absolute path), or restart servers (`agents.llm.vllm_server.restart_server`); the loop
reaches it through `selfplay.policy.served`.
"""

from __future__ import annotations

import os
import re

import httpx

from agents.llm.vllm_server import error_message, server_root
from selfplay.core.crashpoints import crash_point
from selfplay.core.errors import EndpointLost, UserError

PREFIX = "round"
KEEP_ROUNDS = 2  # round r and r-1 stay loaded (r-1 may still answer in-flight requests); r-2 is unloaded


def adapter_name(round_: int, tag: str | None = None, prefix: str = PREFIX) -> str:
    return f"{prefix}-{round_}" + (f"-{tag}" if tag else "")


class LoraPublisher:
    """Loads `round-R` adapters on one server and unloads the old ones."""

    def __init__(self, base_url: str, api_key: str | None = None, *, timeout_s: float = 300.0,
                 prefix: str = PREFIX) -> None:
        self.root = server_root(base_url)
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout_s = timeout_s
        self.prefix = prefix
        self._pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)-[0-9a-f]+$")

    def served(self) -> list[str]:
        """Model ids the server lists on `/v1/models` (the base model and every loaded adapter)."""
        response = self._call("GET", "/v1/models", None, "list the served models")
        try:
            return [str(m["id"]) for m in response.json().get("data", [])]
        except (ValueError, AttributeError, KeyError, TypeError):
            raise UserError(f"GET {self.root}/v1/models: the answer is not an OpenAI model list "
                            f"({response.text[:200]!r}); is --base-url an OpenAI-compatible server?") from None

    def publish(self, round_: int, adapter_dir: str | os.PathLike, tag: str | None = None) -> str:
        """Serve the adapter of round `round_` as `round-<round_>[-tag]`; return that model name."""
        name, path = adapter_name(round_, tag, self.prefix), self._adapter_path(adapter_dir)
        served = self.served()
        if name in served and tag is None:
            self._unload(name)
        if name not in served or tag is None:
            self._load(name, path)
        crash_point(f"round{round_}:published")  # tests: killed after the load, before the old ones are unloaded
        for old in self._stale(served, round_, name, tagged=tag is not None):
            self._unload(old)
        return name

    def ensure(self, round_: int, adapter_dir: str | os.PathLike, tag: str | None = None) -> str:
        """`round-<round_>[-tag]` is served after this (published again when the server lost it); return its name."""
        name = adapter_name(round_, tag, self.prefix)
        if name not in self.served():
            return self.publish(round_, adapter_dir, tag)
        return name

    def _stale(self, served: list[str], round_: int, name: str, *, tagged: bool) -> list[str]:
        """Adapters to unload after `name` is loaded: round r-2 (untagged), or this prefix's older/other ones."""
        if not tagged:
            old = adapter_name(round_ - KEEP_ROUNDS, prefix=self.prefix)
            return [old] if round_ - KEEP_ROUNDS >= 0 and old in served else []
        stale = []
        for model in served:
            match = self._pattern.match(model)
            if match and model != name and (int(match.group(1)) == round_ or
                                            int(match.group(1)) <= round_ - KEEP_ROUNDS):
                stale.append(model)
        return stale

    # -- internals -------------------------------------------------------------------------------------------

    @staticmethod
    def _adapter_path(adapter_dir: str | os.PathLike) -> str:
        path = os.path.abspath(os.fspath(adapter_dir))
        if not os.path.isfile(os.path.join(path, "adapter_config.json")):
            raise UserError(f"{path}: not a LoRA adapter directory (no adapter_config.json); "
                            f"save the round's adapter with peft's save_pretrained first")
        return path

    def _load(self, name: str, path: str) -> None:
        self._call("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path},
                   f"load adapter {name!r} from {path}")

    def _unload(self, name: str) -> None:
        self._call("POST", "/v1/unload_lora_adapter", {"lora_name": name}, f"unload adapter {name!r}")

    def _call(self, method: str, route: str, body: dict | None, what: str) -> httpx.Response:
        url = f"{self.root}{route}"
        try:
            response = httpx.request(method, url, json=body, headers=self.headers, timeout=self.timeout_s)
        except httpx.HTTPError as exc:  # no answer at all: the server is gone (or never was: see `prepare`)
            raise EndpointLost(f"{method} {url}: cannot {what}: {type(exc).__name__}: {exc}; is the server running "
                               f"at {self.root}? Start it and run the same command: the run resumes") from None
        if response.status_code < 400:
            return response
        message = error_message(response)
        if message is None and response.status_code == 404 and "lora" in route:
            raise UserError(f"{method} {url}: HTTP 404: the server has no runtime LoRA API; start vLLM with "
                            f"VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora (or use selfplay serve)")
        raise UserError(f"{method} {url}: the server refused to {what}: HTTP {response.status_code}: "
                        f"{message or response.text[:300]}")
