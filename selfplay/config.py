"""Typed job configs (TOML -> pydantic), flag overrides, and the resolved config written to the run dir.

What it is for: one validated, serialisable config per job. Unknown keys are errors (a typo never
silently does nothing); every error names the file, the key and what was expected.
What it does not do: run anything. Jobs read these objects.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfplay.errors import UserError


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(Section):
    name: str
    backend: Literal["openai", "local", "vllm"] = "openai"
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=6, ge=1)
    supports_n: bool = True
    stream: bool = False             # openai: send `stream: true` (for servers that only stream)
    batch: bool = False              # openai: send requests through the Batch API (batch price; generate only)
    batch_poll_s: float = Field(default=5.0, gt=0)       # batch mode: seconds between polls of a batch
    batch_max_requests: int = Field(default=50_000, ge=1)  # batch mode: requests per batch (provider limit)
    path: str | None = None          # local / vllm: a checkpoint directory (else `name` is a tiny config / path)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    hourly_usd: float | None = Field(default=None, ge=0)   # local / vllm: the hardware's price per hour
    device: str | None = None        # local: "cpu", "cuda", ...
    dtype: str | None = None         # local: "float32", "bfloat16", ...
    enable_lora: bool = False        # vllm: serve LoRA adapters per round
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)  # vllm: extra `vllm.LLM(...)` arguments


class SamplingSection(Section):
    """What generate and the loop share: how K candidates per task are sampled and checked."""

    k: int = Field(default=8, ge=1)
    max_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: list[str] = Field(default_factory=list)
    seed: int = 0
    concurrency: int = Field(default=64, ge=1)
    system_prompt: str | None = None
    workflow: str = "direct"
    workflow_options: dict[str, Any] = Field(default_factory=dict)
    verify_concurrency: int = Field(default=4, ge=1)


class GenerateSection(SamplingSection):
    tasks: str
    verifier: str | None = None          # "math" | "code" | "judge" | "prm": verify each batch as it lands
    k_max: int | None = Field(default=None, ge=1)            # adaptive K (needs a verifier)
    stop_after_verified: int | None = Field(default=None, ge=1)
    batch: int | None = Field(default=None, ge=1)
    low_pass_rate: float = Field(default=0.5, gt=0, le=1)


class JudgeSection(ModelSection):
    """`verifier = "judge"`: an AI-feedback judge model (priced and budgeted like the policy) and its criteria."""

    rubric: str | None = None
    principles: list[str] = Field(default_factory=list)
    pass_threshold: int = Field(default=7, ge=1, le=10)


class PRMSection(Section):
    """`verifier = "prm"`: a process reward model directory written by `selfplay train prm`."""

    path: str
    aggregation: Literal["min", "product", "last", "mean"] | None = None
    pass_threshold: float = Field(default=0.5, ge=0, le=1)
    step_separator: str | None = None


class BudgetSection(Section):
    usd: float | None = Field(default=None, ge=0)
    tokens: int | None = Field(default=None, ge=0)
    minutes: float | None = Field(default=None, ge=0)


class ExecutorSection(Section):
    """Where requests and checks run: in this process (`local`) or fanned out over a Ray cluster (`ray`)."""

    kind: Literal["local", "ray"] = "local"
    address: str | None = None           # ray.init(address=...): None starts a local Ray, "auto" joins one
    workers: int = Field(default=2, ge=1)                 # Ray actors that hold the HTTP clients
    endpoints: list[str] = Field(default_factory=list)    # more replicas of [model] base_url, balanced by load
    worker_num_cpus: float = Field(default=0.25, ge=0)    # CPUs a worker actor reserves
    verify_num_cpus: float = Field(default=1.0, gt=0)     # CPUs one verification (or tool) Ray task reserves
    max_worker_losses: int = Field(default=3, ge=0)       # re-sends of one request whose worker died


class GenerateConfig(Section):
    model: ModelSection
    critic: ModelSection | None = None   # self_refine's critic_model; defaults to [model] with that name
    judge: JudgeSection | None = None    # verifier = "judge"
    prm: PRMSection | None = None        # verifier = "prm"
    generate: GenerateSection
    budget: BudgetSection = Field(default_factory=BudgetSection)
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)
    executor: ExecutorSection = Field(default_factory=ExecutorSection)


def read_toml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason})") from exc


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` overrides (value parsed as a TOML value, else taken as a string)."""
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. --set generate.k=4")
        dotted, raw = item.split("=", 1)
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        node = data
        *parents, leaf = dotted.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {item!r}: {part} is not a table")
        node[leaf] = value
    return data


def validate(model: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()[:5])
        raise UserError(f"{source}: invalid config: {problems}") from exc


def load_generate_config(path: str | Path, overrides: list[str] | None = None) -> GenerateConfig:
    data = apply_overrides(read_toml(path), overrides or [])
    config = validate(GenerateConfig, data, str(path))
    tasks = Path(config.generate.tasks)
    if not tasks.is_absolute():  # task files are found next to the config
        config.generate.tasks = str((Path(path).parent / tasks).resolve())
    return config


def write_resolved(config: BaseModel, run_dir: Path, name: str = "config.json") -> None:
    (run_dir / name).write_text(json.dumps(config.model_dump(mode="json"), indent=2) + "\n")
