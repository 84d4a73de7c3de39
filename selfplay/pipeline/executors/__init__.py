"""Job executors: where a generate job's LLM requests and verification checks run.

What it is for: `open_executor(config)` returns the executor named by `[executor] kind`:
- `local` (the default): today's behaviour, everything in this process: the configured backend
  (`openai` / `local` / `vllm`) and a thread pool for verification and tool runs;
- `ray`: the requests go to Ray worker actors that hold the HTTP clients of every endpoint (the
  `[model] base_url` plus `[executor] endpoints`, balanced by requests in flight), and the checks
  run as Ray tasks with a `num_cpus` request (`ray_executor.py`).
In both, this process (the driver) keeps the run store, the budget ledger and the request cache, and
runs the workflows; every executor offers the same three things the job asks for:
`verify_pool` (a `concurrent.futures.Executor`), `backend(section, concurrency)` and
`metered(section, backend, prices, ledger, store)`; `close()` releases what it started.
What it does NOT do: decide what to sample or when to stop (`selfplay.jobs`), or import Ray unless
`kind = "ray"` (Ray is the optional `ray` extra).
"""

from __future__ import annotations

from typing import Any, Protocol

from selfplay.config.generate import GenerateConfig


class JobExecutor(Protocol):
    verify_pool: Any

    def backend(self, section: Any, concurrency: int) -> Any: ...
    def metered(self, section: Any, backend: Any, prices: Any, ledger: Any, store: Any) -> Any: ...
    def close(self) -> None: ...


def open_executor(config: GenerateConfig, run_dir: Any = None) -> JobExecutor:
    """The executor `[executor] kind` names; the caller must `close()` it."""
    if config.executor.kind == "ray":
        from selfplay.pipeline.executors.ray_executor import RayExecutor
        return RayExecutor(config, run_dir)
    from selfplay.pipeline.executors.local import LocalExecutor
    return LocalExecutor(config)
