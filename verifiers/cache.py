"""A verdict cache keyed by (verifier, version, settings, response, reference/tests).

What it is for: K samples of one task often repeat answers, and resumed runs re-check old
candidates; a cached verdict skips the work. `VerdictCache` is an in-memory, thread-safe LRU;
anything with the same `get(key)` / `put(key, verdict)` methods (e.g. a table in the run store)
can stand in for it. Keys are SHA-256 hex digests of a canonical JSON of everything that can
change the verdict, so they are stable across processes and safe to persist.

What it does not do: cache verifier errors (a timeout may pass on a quieter machine: it is
re-checked next time), expire entries by time, or persist anything itself.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any, Mapping, Protocol

from verifiers.verdict import Verdict


class VerdictStore(Protocol):
    def get(self, key: str) -> Verdict | None: ...

    def put(self, key: str, verdict: Verdict) -> None: ...


def verifier_identity(verifier: Any) -> dict[str, Any]:
    """Name, version and settings of a verifier (attributes `name`, `version`, `cache_key_parts()`)."""
    name = getattr(verifier, "name", None) or getattr(verifier, "__qualname__", type(verifier).__qualname__)
    module = getattr(verifier, "__module__", "")
    parts = verifier.cache_key_parts() if hasattr(verifier, "cache_key_parts") else {}
    return {"name": f"{module}.{name}", "version": str(getattr(verifier, "version", "0")), "settings": parts}


def cache_key(verifier: Any, response: str, columns: Mapping[str, Any]) -> str:
    """Stable key for one check; `columns` are the reference / tests / other inputs."""
    payload = {"verifier": verifier_identity(verifier), "response": response, "columns": dict(columns)}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class VerdictCache:
    """In-memory LRU of decided verdicts (errors are never stored)."""

    def __init__(self, max_entries: int = 100_000):
        self.max_entries = max_entries
        self._entries: OrderedDict[str, Verdict] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Verdict | None:
        with self._lock:
            verdict = self._entries.get(key)
            if verdict is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return verdict.model_copy(deep=True)

    def put(self, key: str, verdict: Verdict) -> None:
        if verdict.error is not None:
            return
        with self._lock:
            self._entries[key] = verdict.model_copy(deep=True)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
