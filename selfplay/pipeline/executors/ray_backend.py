"""The driver's side of Ray generation: an `LLM` backend whose requests are sent by Ray worker actors.

What it is for: `RayBackend.chat` picks the endpoint (the `[model] base_url` and `[executor] endpoints`,
e.g. vLLM replicas) and the worker actor with the fewest requests in flight, awaits the worker's
reply and turns it back into a `ChatResult` (or the worker's final `LLMError`). The driver sees every
request in flight on the cluster, so its balancing is global, not per worker. A worker that dies
with requests in flight (killed, OOM, node lost) makes each of them fail with kind `worker_lost`
(`metering.py` charges such a request its worst case and sends it again); Ray restarts the actor,
and requests queued for it wait for the restart.
What it does NOT do: price, reserve or cache (the driver's `MeteredLLM` wraps this backend exactly
as it wraps the in-process `openai` backend), or retry transport errors (the worker's client does).
"""

from __future__ import annotations

from typing import Any

from agents.llm.types import ChatResult, LLMError, Message, SamplingParams
from selfplay.pipeline.executors.ray_workers import EndpointWorker

WORKER_LOST = "worker_lost"


class WorkerPool:
    """`count` EndpointWorker actors, restarted by Ray when they die, picked by fewest requests in flight."""

    def __init__(self, ray: Any, names: list[str], *, num_cpus: float, env_vars: dict[str, str]) -> None:
        self.ray = ray
        actor = ray.remote(EndpointWorker)
        options: dict[str, Any] = {"max_restarts": -1, "max_task_retries": 0, "num_cpus": num_cpus,
                                   "max_concurrency": 1000, "scheduling_strategy": "SPREAD"}
        if env_vars:
            options["runtime_env"] = {"env_vars": env_vars}
        self.names = names
        self.handles = [actor.options(name=name, **options).remote() for name in names]
        self.in_flight = [0] * len(names)
        self.lost_requests = 0

    def pick(self) -> int:
        return min(range(len(self.handles)), key=lambda i: self.in_flight[i])

    def close(self) -> None:
        for handle in self.handles:
            try:
                self.ray.kill(handle, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass


class RayBackend:
    """An `LLM` (see `agents.llm.base`) over a `WorkerPool` and one or more endpoint URLs."""

    def __init__(self, pool: WorkerPool, spec: dict[str, Any], endpoints: list[str]) -> None:
        from ray.exceptions import RayActorError

        self.pool = pool
        self.spec = spec
        self.model = spec["name"]
        self.supports_n = spec["supports_n"]
        self.max_n = spec.get("max_n")  # [model] max_n: the sampler plans requests of at most this many choices
        self.endpoints = endpoints
        self.endpoint_in_flight = [0] * len(endpoints)
        self.sent_per_endpoint = [0] * len(endpoints)
        self._lost = RayActorError

    async def chat(self, messages: list[Message], params: SamplingParams, *,
                   tools: list[dict[str, Any]] | None = None, sample_offset: int = 0) -> ChatResult:
        worker = self.pool.pick()
        endpoint = min(range(len(self.endpoints)), key=lambda i: self.endpoint_in_flight[i])
        self.pool.in_flight[worker] += 1
        self.endpoint_in_flight[endpoint] += 1
        self.sent_per_endpoint[endpoint] += 1
        try:
            reply = await self.pool.handles[worker].chat.remote(
                self.spec, self.endpoints[endpoint], messages, params.model_dump(mode="json"), tools, sample_offset)
        except self._lost as exc:
            self.pool.lost_requests += 1
            raise LLMError(WORKER_LOST, f"Ray worker {self.pool.names[worker]} died with this request in flight "
                                        f"({type(exc).__name__})", retryable=True) from exc
        finally:
            self.pool.in_flight[worker] -= 1
            self.endpoint_in_flight[endpoint] -= 1
        return decode(reply)

    async def list_models(self) -> list[str]:
        """Reachability of EVERY endpoint, each asked through a worker; the model ids of the first."""
        models: list[str] = []
        for url in self.endpoints:
            handle = self.pool.handles[self.pool.pick()]
            try:
                found = decode_models(await handle.list_models.remote(self.spec, url), url)
            except self._lost as exc:
                raise LLMError("connection", f"Ray worker died while checking {url}: {exc}") from exc
            models = models or found
        return models

    @property
    def attempt_errors(self) -> dict[str, int]:
        """Failed attempts by kind summed over live workers (a restarted worker's earlier counts are lost)."""
        totals: dict[str, int] = {}
        refs = [h.attempt_errors.remote(self.model) for h in self.pool.handles]
        for ref in refs:
            try:
                counts = self.pool.ray.get(ref, timeout=30)
            except Exception:  # noqa: BLE001 - a worker being restarted: its counts are gone
                continue
            for kind, count in counts.items():
                totals[kind] = totals.get(kind, 0) + count
        return totals

    async def aclose(self) -> None:
        """Nothing here: the executor owns the pool and closes it once, after every backend."""


def decode(reply: dict[str, Any]) -> ChatResult:
    if "error" in reply:
        raise _error(reply["error"])
    return ChatResult.model_validate(reply["result"])


def decode_models(reply: dict[str, Any], url: str) -> list[str]:
    if "error" in reply:
        error = reply["error"]
        raise LLMError(error["kind"], f"{url}: {error['message']}", status=error["status"])
    return reply["result"]


def _error(data: dict[str, Any]) -> LLMError:
    return LLMError(data["kind"], data["message"], status=data["status"], retryable=data["retryable"])
