"""The in-process executor (`[executor] kind = "local"`, the default): the behaviour a generate job always had.

What it is for: the configured backend (`openai` / `local` / `vllm`), metered by `MeteredLLM` against
the run store's ledger and cache, and one long-lived thread pool for verification checks and tool
runs (the code sandbox's warm workers belong to the thread that started them).
What it does NOT do: spread anything beyond this process (see `ray_executor.py`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from selfplay.pipeline.llm import build_backend, build_metered
from selfplay.config.generate import GenerateConfig


class LocalExecutor:
    def __init__(self, config: GenerateConfig) -> None:
        self.verify_pool = ThreadPoolExecutor(max_workers=config.generate.verify_concurrency,
                                              thread_name_prefix="selfplay-verify")

    def backend(self, section: Any, concurrency: int) -> Any:
        return build_backend(section, concurrency)

    def metered(self, section: Any, backend: Any, prices: Any, ledger: Any, store: Any) -> Any:
        return build_metered(section, backend, prices, ledger, store)

    def close(self) -> None:
        self.verify_pool.shutdown(wait=True)
