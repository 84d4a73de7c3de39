"""Build the LLM a job talks to from its `[model]` config: backend, price, ledger, cache.

What it is for: the one place where config becomes a `MeteredLLM` over the `openai`, `local` or
`vllm` backend, priced from the shipped table plus the user's `[prices]` overrides, reserving in
the run store's ledger and reading the run store's cache.
What it does not do: decide what to ask (workflows) or when to stop (jobs).
"""

from __future__ import annotations

import os
from typing import Any

from agents.llm.metered import MeteredLLM
from agents.llm.openai_backend import OpenAIBackend
from agents.llm.retry import RetryPolicy
from agents.llm.types import LLMError
from agents.money.ledger import BudgetLedger
from agents.money.prices import PriceError, PriceTable
from selfplay.config.common import ModelSection
from selfplay.core.errors import UserError
from selfplay.core.store import RunStore


def price_table(overrides: dict[str, dict[str, Any]]) -> PriceTable:
    try:
        return PriceTable.shipped().with_overrides(overrides)
    except PriceError as exc:
        raise UserError(f"[prices]: {exc}") from exc


def build_backend(model: ModelSection, concurrency: int) -> Any:
    if model.backend == "local":
        return _local_backend(model)
    if model.backend == "vllm":
        return _vllm_backend(model)
    api_key = None
    if model.api_key_env:
        api_key = os.environ.get(model.api_key_env)
        if not api_key:
            raise UserError(f"[model] api_key_env = {model.api_key_env!r}, but that environment variable is not set")
    if model.batch:
        from agents.llm.batch_backend import OpenAIBatchBackend
        return OpenAIBatchBackend(model.name, base_url=model.base_url, api_key=api_key, timeout_s=model.timeout_s,
                                  retry=RetryPolicy(max_attempts=model.max_attempts), supports_n=model.supports_n,
                                  extra_body=model.extra_body, poll_s=model.batch_poll_s,
                                  max_requests=model.batch_max_requests)
    return OpenAIBackend(model.name, base_url=model.base_url, api_key=api_key, timeout_s=model.timeout_s,
                         concurrency=concurrency, retry=RetryPolicy(max_attempts=model.max_attempts),
                         supports_n=model.supports_n, extra_body=model.extra_body, stream=model.stream)


def _local_backend(model: ModelSection) -> Any:
    """An in-process transformers model: `path` (a checkpoint dir) or `name` (a dir or a built-in tiny config)."""
    try:
        from agents.llm.local import LocalBackend
        from trainer.models import ModelNotFound, load_model
    except ImportError as exc:
        raise UserError(f"[model] backend = \"local\" needs the train extra: pip install 'selfplay[train]' ({exc})") from exc
    try:
        net, tokenizer = load_model(model.path or model.name, dtype=model.dtype)
    except ModelNotFound as exc:
        raise UserError(f"[model]: {exc}") from exc
    if model.device:
        net = net.to(model.device)
    return LocalBackend(net, tokenizer, name=model.name, hourly_usd=model.hourly_usd or 0.0)


def _vllm_backend(model: ModelSection) -> Any:
    from agents.llm.vllm_backend import VLLMBackend

    try:
        return VLLMBackend(model.path or model.name, name=model.name, enable_lora=model.enable_lora,
                           hourly_usd=model.hourly_usd or 0.0, engine_kwargs=model.engine_kwargs)
    except ImportError as exc:
        raise UserError(f"[model] backend = \"vllm\" needs vLLM on a GPU machine: pip install 'selfplay[vllm]' ({exc})") from exc


def build_metered(model: ModelSection, backend: Any, prices: PriceTable, ledger: BudgetLedger,
                  store: RunStore) -> MeteredLLM:
    """Priced from the table, or, for an in-process engine with no [prices] entry, by its hardware time."""
    if model.backend in ("local", "vllm") and model.name not in prices.models:
        return MeteredLLM(backend, price=None, ledger=ledger, cache=store)
    try:
        price = prices.lookup(model.name)
    except PriceError as exc:
        raise UserError(str(exc)) from exc
    return MeteredLLM(backend, price=price, ledger=ledger, cache=store)


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
