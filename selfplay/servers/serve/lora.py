"""Runtime LoRA adapters for `selfplay serve`, the way vLLM serves them (`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`).

What it is for: `POST /v1/load_lora_adapter {"lora_name", "lora_path"}` loads a peft adapter over the served base
model; a request whose `model` is `lora_name` samples with it; `POST /v1/unload_lora_adapter {"lora_name"}`
drops it; `/v1/models` lists the base and every adapter (`parent` = the base, `root` = the path), as vLLM does.
Each adapter gets its own `LocalBackend` (its own batcher) over a view of one shared peft model: every forward
pass of a view takes one lock, activates its adapter (or disables all of them for the base model) and runs, so
base replies are those of the plain base model and batches of different adapters never mix weights.
Errors are `AdapterError(status, message)`: 400 for a missing field, a duplicate name or an adapter peft cannot
load, 404 for an unknown adapter or a path with no `adapter_config.json` (vLLM's answers for the same cases).
What it does not do: load adapters over a backend without an in-process HF model (`hf_model`), merge adapters,
check `max_lora_rank`, or persist anything (a restarted server has no adapters, as a restarted vLLM).
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from selfplay.config.common import ModelSection
from selfplay.core.errors import RequestRefused
from selfplay.pipeline.llm import Engine, build_backend

ADAPTER_CONFIG = "adapter_config.json"


class AdapterError(RequestRefused):
    """A LoRA route's refusal: 400 (bad field, duplicate, an adapter peft cannot load) or 404 (unknown adapter)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _View:
    """What a `LocalBackend` sees as its model: the shared peft model with one adapter (None = base) active."""

    def __init__(self, registry: "LoraAdapters", name: str | None) -> None:
        self._registry, self._name = registry, name

    def __call__(self, **kwargs: Any) -> Any:
        registry = self._registry
        with registry.lock:
            peft_model = registry.peft_model
            if peft_model is None:
                return registry.base(**kwargs)
            if self._name is None:
                with peft_model.disable_adapter():
                    return peft_model(**kwargs)
            peft_model.set_adapter(self._name)
            return peft_model(**kwargs)

    def eval(self) -> "_View":
        return self

    def get_base_model(self) -> Any:
        return self._registry.base

    @property
    def forward(self) -> Any:
        return self._registry.base.forward

    def __getattr__(self, item: str) -> Any:  # config, generation_config, parameters, ...
        return getattr(self._registry.base, item)


class LoraAdapters:
    """The adapters loaded over `llm` (a `LocalBackend`): name -> its own backend sharing the base weights."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.base = llm.hf_model
        self.lock = threading.RLock()
        self.peft_model: Any = None
        self.backends: dict[str, Any] = {}
        self.paths: dict[str, str] = {}
        self._ops = asyncio.Lock()
        self._viewed = False
        self._internal: dict[str, str] = {}  # lora_name -> peft adapter name (unique, never reused)
        self._stale: set[str] = set()  # unloaded adapters still injected (peft keeps at least one)
        self._count = 0

    def backend_for(self, model: str) -> Any | None:
        if model == self.llm.model:
            return self.llm
        return self.backends.get(model)

    def listing(self) -> list[tuple[str, str]]:
        return [(name, self.paths[name]) for name in self.backends]

    async def load(self, body: Any) -> str:
        body = body if isinstance(body, dict) else {}
        name, path = body.get("lora_name"), body.get("lora_path")
        if not name or not path or not isinstance(name, str) or not isinstance(path, str):
            raise AdapterError(400, "Both 'lora_name' and 'lora_path' must be provided.")
        async with self._ops:
            if name in self.backends or name == self.llm.model:
                raise AdapterError(400, f"The lora adapter '{name}' has already been loaded.")
            if not os.path.isfile(os.path.join(path, ADAPTER_CONFIG)):
                raise AdapterError(404, f"Loading lora {name} failed: No adapter found for {path} "
                                        f"(no {ADAPTER_CONFIG} there)")
            if not self._viewed:  # the base backend samples through the view from its next batch on
                await self.llm.reload((_View(self, None), self.llm.tokenizer))
                self._viewed = True
            self._count += 1
            internal = f"lora{self._count}"
            try:
                await asyncio.to_thread(self._inject, internal, path)
            except Exception as exc:  # noqa: BLE001 - peft refused the adapter: the client's error
                raise AdapterError(400, f"Loading lora {name} failed: {type(exc).__name__}: {exc}") from None
            section = ModelSection(name=name, backend="local", hourly_usd=self.llm.meter.hourly_usd)
            self.backends[name] = build_backend(section, engine=Engine(weights=(_View(self, internal),
                                                                                self.llm.tokenizer)))
            self.paths[name] = path
            self._internal[name] = internal
        return f"Success: LoRA adapter '{name}' added successfully."

    async def unload(self, body: Any) -> str:
        body = body if isinstance(body, dict) else {}
        name = body.get("lora_name")
        if not name or not isinstance(name, str):
            raise AdapterError(400, "'lora_name' needs to be provided to unload a LoRA adapter.")
        async with self._ops:
            backend = self.backends.pop(name, None)
            if backend is None:
                raise AdapterError(404, f"The lora adapter '{name}' cannot be found.")
            self.paths.pop(name, None)
            await backend.aclose()  # finishes its in-flight batches first
            await asyncio.to_thread(self._drop, self._internal.pop(name))
        return f"Success: LoRA adapter '{name}' removed successfully."

    async def aclose(self) -> None:
        for backend in list(self.backends.values()):
            await backend.aclose()
        self.backends.clear()

    def _inject(self, name: str, path: str) -> None:
        from peft import PeftModel

        with self.lock:
            if self.peft_model is None:
                self.peft_model = PeftModel.from_pretrained(self.base, path, adapter_name=name).eval()
            else:
                self.peft_model.load_adapter(path, adapter_name=name)
                self.peft_model.eval()
            for stale in list(self._stale):
                self.peft_model.delete_adapter(stale)
                self._stale.discard(stale)

    def _drop(self, name: str) -> None:
        with self.lock:
            if self.peft_model is None or name not in self.peft_model.peft_config:
                return
            if len(self.peft_model.peft_config) > 1:
                self.peft_model.delete_adapter(name)
            else:  # peft keeps one adapter: it stays injected, unused (the base view disables it)
                self._stale.add(name)
