"""A capacity model: candidates per hour and dollars per verified token of a generate job on N GPUs.

What it is for: planning a cluster before renting it. A job is a pipeline of three stages, and it
runs at the speed of the slowest:
- generation: `replicas` inference servers (a replica spans `gpus_per_replica` GPUs), each producing
  `tokens_per_s_per_replica` completion tokens per second when saturated. One candidate costs its
  completion tokens plus its share of the prompt, which an `n=K` request prefills once per task
  (a prompt token costs `prefill_weight` of a generated one);
- verification: `verify_cpus` cores, each running `checks_per_s_per_cpu` checks (one check per
  distinct answer: `checks_per_candidate` < 1 when answers repeat);
- the driver: the one process that owns the run store and the ledger meters every request and
  stores every candidate (`driver_requests_per_s`, one n=K request per task, so K candidates per
  request; measured with the mock endpoint, see docs/scale.md; None = no ceiling).
Verified tokens are completion tokens of candidates that passed (`yield_`); cost per hour is GPUs
and verification CPUs at their hourly prices. All functions are pure and take plain numbers.
What it does NOT do: measure anything (bench/ does), model queueing or tail latency, the
trainer's GPUs, or an API's price per token (for a paid API, $/verified token is its price per
completion token divided by the yield, plus the prompt share).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Workload:
    k: int                                   # candidates per task (one n=K request)
    tokens_per_candidate: float              # completion tokens of one candidate
    yield_: float                            # fraction of candidates that pass the verifier
    prompt_tokens: float = 0.0               # prompt tokens of one task
    prefill_weight: float = 0.1              # GPU cost of a prompt token relative to a generated one
    checks_per_candidate: float = 1.0        # < 1 when identical answers share one check


@dataclass(frozen=True)
class Cluster:
    gpus: int
    tokens_per_s_per_replica: float          # saturated completion tokens/s of one replica
    checks_per_s_per_cpu: float              # verifier throughput of one core
    verify_cpus: float                       # cores given to verification
    gpu_usd_per_hour: float
    cpu_usd_per_hour: float = 0.0            # per verification core
    gpus_per_replica: int = 1
    driver_requests_per_s: float | None = None


def replicas(cluster: Cluster) -> int:
    return cluster.gpus // cluster.gpus_per_replica


def gpu_tokens_per_candidate(work: Workload) -> float:
    """Generated-token equivalents one candidate costs a GPU: its completion plus 1/K of the prompt's prefill."""
    return work.tokens_per_candidate + work.prompt_tokens * work.prefill_weight / work.k


def generation_per_hour(cluster: Cluster, work: Workload) -> float:
    return replicas(cluster) * cluster.tokens_per_s_per_replica * SECONDS_PER_HOUR / gpu_tokens_per_candidate(work)


def verification_per_hour(cluster: Cluster, work: Workload) -> float:
    return cluster.verify_cpus * cluster.checks_per_s_per_cpu * SECONDS_PER_HOUR / work.checks_per_candidate


def driver_per_hour(cluster: Cluster, work: Workload) -> float:
    if cluster.driver_requests_per_s is None:
        return float("inf")
    return cluster.driver_requests_per_s * work.k * SECONDS_PER_HOUR


def candidates_per_hour(cluster: Cluster, work: Workload) -> tuple[float, str]:
    """The pipeline's rate and the stage that sets it ("generation", "verification" or "driver")."""
    stages = {"generation": generation_per_hour(cluster, work),
              "verification": verification_per_hour(cluster, work),
              "driver": driver_per_hour(cluster, work)}
    bottleneck = min(stages, key=stages.__getitem__)
    return stages[bottleneck], bottleneck


def usd_per_hour(cluster: Cluster) -> float:
    return cluster.gpus * cluster.gpu_usd_per_hour + cluster.verify_cpus * cluster.cpu_usd_per_hour


def verified_tokens_per_hour(cluster: Cluster, work: Workload) -> float:
    rate, _ = candidates_per_hour(cluster, work)
    return rate * work.yield_ * work.tokens_per_candidate


def usd_per_verified_token(cluster: Cluster, work: Workload) -> float:
    verified = verified_tokens_per_hour(cluster, work)
    return usd_per_hour(cluster) / verified if verified > 0 else float("inf")


@dataclass(frozen=True)
class Estimate:
    gpus: int
    replicas: int
    candidates_per_hour: float
    tasks_per_hour: float
    bottleneck: str
    verified_tokens_per_hour: float
    usd_per_hour: float
    usd_per_million_verified_tokens: float

    def as_dict(self) -> dict:
        return asdict(self)


def estimate(cluster: Cluster, work: Workload) -> Estimate:
    rate, bottleneck = candidates_per_hour(cluster, work)
    return Estimate(gpus=cluster.gpus, replicas=replicas(cluster), candidates_per_hour=rate,
                    tasks_per_hour=rate / work.k, bottleneck=bottleneck,
                    verified_tokens_per_hour=verified_tokens_per_hour(cluster, work),
                    usd_per_hour=usd_per_hour(cluster),
                    usd_per_million_verified_tokens=usd_per_verified_token(cluster, work) * 1e6)
