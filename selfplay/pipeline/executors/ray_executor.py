"""The Ray executor (`[executor] kind = "ray"`): a generate job's requests and checks fanned out over a Ray cluster.

What it is for: the parts of a generate job that cost CPU or sockets run on the cluster:
- LLM requests go to `[executor] workers` Ray actors (`ray_workers.EndpointWorker`), each holding
  HTTP clients to every endpoint (`[model] base_url` + `[executor] endpoints`, e.g. a fleet of vLLM
  replicas), balanced by requests in flight (`ray_backend.RayBackend`);
- verification checks (and `tool_use` sandbox runs) are Ray tasks reserving `verify_num_cpus`
  each (`RayTaskPool`, a `concurrent.futures.Executor`, so `selfplay.pipeline.verify` runs unchanged).
The driver (this process) keeps everything that must be single: the run store (SQLite, written only
here: workers return results, none writes SQLite over the network), the ONE budget ledger every
request reserves in before any worker sends it (so the caps hold however many workers there are),
the request cache, and the workflows' control flow. So a job gives the same candidates and verdicts
as the local executor (same task seeds, same request keys), and a killed driver resumes exactly as
a local job does (its actors die with it; their unsettled reservations become orphaned).
What it does NOT do: run `local` / `vllm` backends on the cluster (serve the model with vLLM and list
the replicas instead), ship the code to the cluster (install selfplay on every node, or use a Ray
`runtime_env`), or scale `selfplay run` (its loop trains in-process; see docs/scale.md).
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from selfplay.config.generate import GenerateConfig
from selfplay.core.errors import UserError
from selfplay.pipeline.executors.metering import ClusterMeteredLLM
from selfplay.pipeline.executors.ray_backend import RayBackend, WorkerPool
from selfplay.pipeline.executors.ray_workers import call
from selfplay.pipeline.llm import api_key, build_metered, section_spec


def worker_name(run_dir: Any, index: int, pid: int | None = None) -> str:
    """Ray actor name of worker `index` of the job on `run_dir` driven by process `pid` (tests find them by it)."""
    digest = hashlib.sha256(str(Path(run_dir or ".").resolve()).encode()).hexdigest()[:10]
    return f"selfplay-worker-{digest}-{pid or os.getpid()}-{index}"


class RayTaskPool(Executor):
    """A `concurrent.futures.Executor` whose every call is a Ray task reserving `num_cpus` CPUs."""

    def __init__(self, ray: Any, num_cpus: float) -> None:
        # A check is idempotent and free: Ray may run it again if its worker process dies.
        self._task = ray.remote(num_cpus=num_cpus, max_retries=3)(call)

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        return self._task.remote(fn, args, kwargs).future()


class RayExecutor:
    def __init__(self, config: GenerateConfig, run_dir: Any = None) -> None:
        self.config = config
        self.settings = config.executor
        self.run_dir = run_dir
        self.ray = _import_ray()
        _check_backends(config)
        self._owns_ray = not self.ray.is_initialized()
        if self._owns_ray:
            self.ray.init(address=self.settings.address, log_to_driver=False)
        self.verify_pool = RayTaskPool(self.ray, self.settings.verify_num_cpus)
        self.pool: WorkerPool | None = None

    def backend(self, section: Any, concurrency: int) -> RayBackend:
        api_key(section)  # a missing key fails here, before any worker starts
        if self.pool is None:
            names = [worker_name(self.run_dir, i) for i in range(self.settings.workers)]
            self.pool = WorkerPool(self.ray, names, num_cpus=self.settings.worker_num_cpus,
                                   env_vars=_api_key_env(self.config))
        return RayBackend(self.pool, section_spec(section, concurrency), self._endpoints(section))

    def metered(self, section: Any, backend: Any, prices: Any, ledger: Any, store: Any) -> ClusterMeteredLLM:
        return build_metered(section, backend, prices, ledger, store, kind=ClusterMeteredLLM,
                             max_worker_losses=self.settings.max_worker_losses)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool = None
        if self._owns_ray:
            self.ray.shutdown()

    def _endpoints(self, section: Any) -> list[str]:
        """The section's base_url, plus the extra replicas when it is the `[model]` endpoint."""
        if section.base_url == self.config.model.base_url:
            return [section.base_url] + [u for u in self.settings.endpoints if u != section.base_url]
        return [section.base_url]


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UserError(f"[executor] kind = \"ray\" needs Ray: pip install 'selfplay[ray]' ({exc})") from exc
    return ray


def _check_backends(config: GenerateConfig) -> None:
    for name, section in (("model", config.model), ("critic", config.critic)):
        if section is not None and section.backend != "openai":
            raise UserError(f"[executor] kind = \"ray\" sends requests over HTTP, so [{name}] backend must be "
                            f"\"openai\" (serve the model with `vllm serve` and list the replicas in "
                            f"[executor] endpoints), not {section.backend!r}")


def _api_key_env(config: GenerateConfig) -> dict[str, str]:
    """The API keys the workers need, passed through Ray's runtime_env (never in a task's arguments)."""
    names = {s.api_key_env for s in (config.model, config.critic) if s is not None and s.api_key_env}
    return {name: os.environ[name] for name in names if name in os.environ}
