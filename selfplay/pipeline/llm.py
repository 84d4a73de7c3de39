"""THE LLM factory: a config section -> a backend -> a metered LLM; and the one loader of model weights.

What it is for: every place in `selfplay` that talks to a model gets it here, so a backend is built one way:
- `build_backend(section, concurrency, engine)`: a `ModelSection` (the `[model]`-like config section, or one a
  policy fills in for itself) to the `openai` backend (or its Batch API variant), the in-process `local`
  (transformers) backend, or the in-process `vllm` engine. `Engine` carries what a section does not say: weights
  already in memory (a policy's trainable model, a `selfplay serve` adapter view), batching and seeds of an
  in-process engine, and `continue_final` (prm-label continues a final assistant message). The Ray workers build
  their HTTP clients here too, from a section sent as plain data (`section_spec` / `section_from_spec`).
- `build_metered(section, backend, prices, ledger, cache)`: the backend wrapped by `agents.llm.metered.MeteredLLM`
  (or a subclass, `kind`), priced from the shipped table plus the user's `[prices]` overrides (`price_table`),
  reserving in the run store's ledger and reading its request cache; with no section, priced by the backend's own
  hardware meter (a policy sampled in this process or on a server priced by the hour).
- `load_policy_model(name_or_path, seed=, dtype=, device=)`: (model, tokenizer) from a built-in tiny config, a
  `save_pretrained` directory or a LoRA adapter directory over its local base; the only caller of
  `trainer.models.load_model` in `selfplay` (jobs, policies, monitors and `selfplay serve` load through it).
- `set_torch_threads(configured)`: the one rule for torch CPU threads (configured, else $SELFPLAY_TORCH_THREADS, else
  1 on <= 2 CPUs), called once by the jobs with a local model and by `selfplay serve`.
What it does not do: decide what to ask (workflows) or when to stop (jobs), or fan requests out over a cluster
(`selfplay.pipeline.executors`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from agents.llm.local_loading import MODEL_CONFIG, is_adapter_dir, load_from_path
from agents.llm.metered import MeteredLLM
from agents.llm.retry import RetryPolicy
from agents.llm.types import LLMError
from agents.money.ledger import BudgetLedger
from agents.money.prices import ModelPrice, PriceError, PriceTable
from selfplay.config.common import ModelSection
from selfplay.core.errors import UserError

# What an OpenAI-compatible vLLM / SGLang server needs to continue the last assistant message.
CONTINUE_EXTRA_BODY = {"continue_final_message": True, "add_generation_prompt": False}


@dataclass(frozen=True)
class Engine:
    """What an in-process engine (local / vllm) needs beyond its config section; None keeps the backend's default."""

    weights: tuple[Any, Any] | None = None   # local: a (model, tokenizer) already in memory, served as it is
    seed: int | None = None                  # local: the generator of unseeded requests (+ a tiny model's init); vllm
    max_batch_rows: int | None = None        # local / vllm: most sampled rows in one batch
    batch_window_s: float | None = None      # local / vllm: how long a batch waits for more requests
    continue_final: bool = False             # a last assistant message is continued, not answered (prm-label)
    max_lora_rank: int | None = None         # vllm with enable_lora
    vllm_api: Any = None                     # vllm: the `vllm` names (tests inject a fake); None imports vllm


# --- prices and metering --------------------------------------------------------------------------------------
def price_table(overrides: dict[str, dict[str, Any]]) -> PriceTable:
    """The shipped price table with the user's `[prices]` entries over it."""
    try:
        return PriceTable.shipped().with_overrides(overrides)
    except PriceError as exc:
        raise UserError(f"[prices]: {exc}") from exc


def section_price(section: ModelSection, prices: PriceTable) -> ModelPrice | None:
    """The section's price per token; None (priced by its hardware time) for an in-process engine with no entry."""
    if section.backend in ("local", "vllm") and section.name not in prices.models:
        return None
    try:
        return prices.lookup(section.name)
    except PriceError as exc:
        raise UserError(str(exc)) from exc


def build_metered(section: ModelSection | None, backend: Any, prices: PriceTable | None, ledger: BudgetLedger,
                  cache: Any, *, kind: type[MeteredLLM] = MeteredLLM, **options: Any) -> MeteredLLM:
    """`backend` metered on `ledger` (cache -> reserve -> send -> settle), reading `cache` (the run store, or None).

    Priced from `prices` for `section`; with no section, by the backend's own hardware meter (a loop's policy).
    `kind` is `MeteredLLM` or a subclass taking `options` (the Ray executor's `ClusterMeteredLLM`).
    """
    price = None if section is None or prices is None else section_price(section, prices)
    return kind(backend, price=price, ledger=ledger, cache=cache, **options)


# --- backends ---------------------------------------------------------------------------------------------------
def build_backend(section: ModelSection, concurrency: int = 64, engine: Engine | None = None, *,
                  source: str = "[model]") -> Any:
    """The backend `section` describes; `source` names where the section came from in error messages."""
    engine = engine or Engine()
    if section.backend == "local":
        return _local_backend(section, engine, source)
    if section.backend == "vllm":
        return _vllm_backend(section, engine, source)
    return _openai_backend(section, concurrency, engine, source)


def api_key(section: ModelSection, source: str = "[model]") -> str | None:
    """The key named by `api_key_env`; a UserError when that variable is not set (never a silent empty key)."""
    if not section.api_key_env:
        return None
    key = os.environ.get(section.api_key_env)
    if not key:
        raise UserError(f"{source} api_key_env = {section.api_key_env!r}, but that environment variable is not set")
    return key


def _openai_backend(section: ModelSection, concurrency: int, engine: Engine, source: str) -> Any:
    extra_body = {**CONTINUE_EXTRA_BODY, **section.extra_body} if engine.continue_final else section.extra_body
    common = dict(base_url=section.base_url, api_key=api_key(section, source), timeout_s=section.timeout_s,
                  retry=RetryPolicy(max_attempts=section.max_attempts), supports_n=section.supports_n,
                  extra_body=extra_body)
    if section.batch:
        from agents.llm.batch_backend import OpenAIBatchBackend
        return OpenAIBatchBackend(section.name, poll_s=section.batch_poll_s, max_requests=section.batch_max_requests,
                                  **common)
    from agents.llm.openai_backend import OpenAIBackend  # the openai SDK takes seconds to import: only when used

    return OpenAIBackend(section.name, concurrency=concurrency, stream=section.stream, max_n=section.max_n, **common)


def _local_backend(section: ModelSection, engine: Engine, source: str) -> Any:
    """An in-process transformers model: `engine.weights`, else loaded from `path` (or `name`: a dir or a tiny config)."""
    try:
        from agents.llm.local import LocalBackend
        from selfplay.pipeline.continuing import ContinuingLocalBackend
    except ImportError as exc:
        raise UserError(f"{source} backend = \"local\" needs the train extra: pip install 'selfplay[train]' ({exc})") from exc
    if engine.weights is not None:
        model, tokenizer = engine.weights
    else:
        model, tokenizer = load_policy_model(section.path or section.name, seed=engine.seed or 0,
                                             dtype=section.dtype, device=section.device, source=source)
    options = _given(seed=engine.seed, max_batch_rows=engine.max_batch_rows, batch_window_s=engine.batch_window_s)
    kind = ContinuingLocalBackend if engine.continue_final else LocalBackend
    return kind(model, tokenizer, name=section.name, hourly_usd=section.hourly_usd or 0.0, **options)


def _vllm_backend(section: ModelSection, engine: Engine, source: str) -> Any:
    if engine.continue_final:
        raise UserError(f"{source} backend = \"vllm\": prm-label continues step prefixes, which the in-process vllm "
                        "backend does not do: serve the model with `vllm serve` and use backend = \"openai\"")
    options = _given(seed=engine.seed, max_lora_rank=engine.max_lora_rank, max_batch_rows=engine.max_batch_rows,
                     batch_window_s=engine.batch_window_s, api=engine.vllm_api)
    try:
        from agents.llm.vllm_backend import VLLMBackend

        return VLLMBackend(section.path or section.name, name=section.name, enable_lora=section.enable_lora,
                           hourly_usd=section.hourly_usd or 0.0, engine_kwargs=section.engine_kwargs, **options)
    except ImportError as exc:
        raise UserError(f"{source} backend = \"vllm\" needs vLLM on a GPU machine: pip install 'selfplay[vllm]' "
                        f"({exc})") from exc


def _given(**options: Any) -> dict[str, Any]:
    """The options that are set (the backend's own defaults hold for the others)."""
    return {name: value for name, value in options.items() if value is not None}


# --- the Ray workers' clients: a section as plain data ------------------------------------------------------------
def section_spec(section: ModelSection, concurrency: int) -> dict[str, Any]:
    """The plain-data (JSON) form of an `openai` section a Ray worker builds its client from (`section_from_spec`)."""
    return {**section.model_dump(mode="json", exclude={"base_url"}), "concurrency": concurrency}


def section_from_spec(spec: dict[str, Any], base_url: str) -> tuple[ModelSection, int]:
    """(the section, its concurrency) back from `section_spec`, pointed at `base_url` (one of the replicas)."""
    fields = {name: value for name, value in spec.items() if name != "concurrency"}
    return ModelSection.model_validate({**fields, "base_url": base_url}), spec["concurrency"]


# --- model weights ----------------------------------------------------------------------------------------------
def load_policy_model(name_or_path: str, *, seed: int = 0, dtype: str | None = None, device: str | None = None,
                      source: str = "[model]") -> tuple[Any, Any]:
    """(model, tokenizer): a built-in tiny config (initialised from `seed`), a `save_pretrained` directory, or a
    LoRA adapter directory over its local base; `dtype` a torch dtype name, `device` where to move it (None: stay).
    Never downloads. A name that is none of these is a UserError naming `source`."""
    try:
        from trainer.models import ModelNotFound, load_model
    except ImportError as exc:
        raise UserError(f"{source}: loading a model needs the train extra: pip install 'selfplay[train]' ({exc})") from exc
    if _is_adapter_only(name_or_path):
        return _load_adapter(name_or_path, dtype=dtype, device=device, source=source)
    try:
        model, tokenizer = load_model(name_or_path, dtype=dtype, seed=seed)
    except ModelNotFound as exc:
        raise UserError(f"{source}: {exc}") from exc
    return (model.to(device) if device else model), tokenizer


# --- torch CPU threads ------------------------------------------------------------------------------------------
THREADS_ENV = "SELFPLAY_TORCH_THREADS"


def default_threads(cpus: int) -> int | None:
    """Torch threads when none is configured: 1 on a machine with 2 CPUs or fewer, else torch's own default (None).

    Measured on the 2-core test machine, shared with other jobs (issue 26): 60 SFT steps of the demo's cold start
    (tiny-llama, batch 64) took 75 s and 136 s with 1 thread, 1,161 s with 2 (39 tokens/s against 607), same loss:
    two threads spin against each other and every other process there; sampling too (docs/served-policy.md:
    `selfplay serve` 4.0 samples/s on two threads, 7.4 on one). Above 2 CPUs torch's default is kept.
    """
    return 1 if cpus <= 2 else None


def torch_threads(configured: int | None) -> int | None:
    """The torch CPU threads of this process: `configured` (a config key, a flag), else $SELFPLAY_TORCH_THREADS, else
    `default_threads` of the CPUs this process may run on; None keeps torch's default."""
    if configured:
        return configured
    raw = os.environ.get(THREADS_ENV, "").strip()
    try:
        from_env = int(raw or 0)
    except ValueError:
        raise UserError(f"${THREADS_ENV} = {raw!r}: set it to a whole number of threads, or unset it") from None
    if from_env:
        return from_env
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return default_threads(cpus)


def set_torch_threads(configured: int | None) -> int | None:
    """Set torch's CPU threads by `torch_threads` (once per process, before a model runs); returns what was set."""
    threads = torch_threads(configured)
    if threads:
        import torch

        torch.set_num_threads(threads)
    return threads


def _is_adapter_only(path: str) -> bool:
    return is_adapter_dir(path) and not os.path.isfile(os.path.join(path, MODEL_CONFIG))


def _load_adapter(path: str, *, dtype: str | None, device: str | None, source: str) -> tuple[Any, Any]:
    """A peft adapter directory over the local base its config names (`agents.llm.local_loading`)."""
    import torch

    try:
        return load_from_path(path, device=device or "cpu", dtype=getattr(torch, dtype) if dtype else None)
    except FileNotFoundError as exc:
        raise UserError(f"{source} {path}: {exc}") from None


async def check_reachable(backend: Any, base_url: str | None) -> None:
    """Fail fast, before any spending, when the endpoint cannot be reached at all."""
    if not hasattr(backend, "list_models"):
        return
    try:
        await backend.list_models()
    except LLMError as exc:
        if exc.kind in ("connection", "timeout"):
            raise UserError(f"cannot reach the model endpoint {base_url or 'https://api.openai.com/v1'} "
                            f"({exc.message}); is the server running? check [model] base_url") from exc
        if exc.kind == "auth":
            raise UserError(f"the endpoint {base_url} refused the API key ({exc.message}); check [model] api_key_env") from exc
        # other answers (404 on /models, ...) mean the server is there: go on
