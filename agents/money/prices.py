"""The price table: USD per 1M input / cached-input / output tokens per model, and what a call costs.

What it is for: pricing every request (real usage after the reply, worst case before it is sent).
It ships `prices.toml` (versioned); users add or override entries. A self-hosted model is priced
from its hardware: `hourly_usd` over measured `tokens_per_second` gives a per-token price.
What it does not do: guess. A model with no entry is a `PriceError` that says how to add one,
never a silent $0 (a free model must be declared with explicit zero prices).
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from agents.llm.types import Usage

PER_MILLION = 1_000_000.0
_DATE_SUFFIX = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")


class PriceError(ValueError):
    """No usable price for a model."""


class ModelPrice(BaseModel):
    """USD per 1M tokens. `cached_input` defaults to `input` (no discount); `batch_input` / `batch_output`
    (the providers' Batch API prices) default to half of `input` / `output`."""

    model_config = {"extra": "forbid"}

    input: float | None = Field(default=None, ge=0.0)
    output: float | None = Field(default=None, ge=0.0)
    cached_input: float | None = Field(default=None, ge=0.0)
    hourly_usd: float | None = Field(default=None, ge=0.0)
    tokens_per_second: float | None = Field(default=None, gt=0.0)
    batch_input: float | None = Field(default=None, ge=0.0)
    batch_output: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _hardware_priced(self) -> "ModelPrice":
        """Hardware pricing: hourly cost over measured throughput, charged on every token."""
        if self.hourly_usd is not None:
            if self.tokens_per_second is None:
                raise ValueError("hourly_usd needs tokens_per_second (measured throughput)")
            per_token = self.hourly_usd / 3600.0 / self.tokens_per_second * PER_MILLION
            self.input = self.output = per_token
            self.cached_input = per_token
        if self.input is None or self.output is None:
            raise ValueError("a price needs both input and output (USD per 1M tokens), or hourly_usd")
        if self.cached_input is None:
            self.cached_input = self.input
        return self

    def batch(self) -> "ModelPrice":
        """The price of the same model through the Batch API (cached input at the batch input price)."""
        batch_input = self.batch_input if self.batch_input is not None else self.input / 2
        batch_output = self.batch_output if self.batch_output is not None else self.output / 2
        return ModelPrice(input=batch_input, output=batch_output, cached_input=min(batch_input, self.cached_input),
                          batch_input=batch_input, batch_output=batch_output)

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
        fresh = usage.prompt_tokens - cached
        return (fresh * self.input + cached * (self.cached_input or 0.0)
                + usage.completion_tokens * self.output) / PER_MILLION

    def worst_case(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Cost if no prompt token is a cache hit and every completion runs to max_tokens."""
        return (prompt_tokens * self.input + completion_tokens * self.output) / PER_MILLION


class PriceTable(BaseModel):
    """Model name -> price, with aliases; `lookup` also strips dated snapshot suffixes."""

    version: str = "user"
    models: dict[str, ModelPrice] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def shipped(cls) -> "PriceTable":
        text = resources.files("agents.money").joinpath("prices.toml").read_text()
        data = tomllib.loads(text)
        return cls(version=data["version"], models=data["models"], aliases=data.get("aliases", {}))

    def with_overrides(self, overrides: dict[str, dict[str, Any]] | None) -> "PriceTable":
        """A copy with user entries added or replacing shipped ones (whole entries, not fields)."""
        models = dict(self.models)
        for name, entry in (overrides or {}).items():
            try:
                models[name] = ModelPrice.model_validate(entry)
            except ValidationError as exc:
                raise PriceError(f"bad price entry for model {name!r}: {exc.errors()[0]['msg']} "
                                 f"(expected input/output/cached_input in USD per 1M tokens)") from exc
        version = self.version + ("+user" if overrides else "")
        return PriceTable(version=version, models=models, aliases=self.aliases)

    def lookup(self, model: str) -> ModelPrice:
        for name in _candidate_names(model):
            name = self.aliases.get(name, name)
            if name in self.models:
                return self.models[name]
        raise PriceError(
            f"no price for model {model!r} (price table {self.version}). Add it to your config:\n"
            f'  [prices."{model}"]\n  input = 0.15   # USD per 1M input tokens\n  output = 0.60  # USD per 1M output tokens\n'
            f"or, for a self-hosted model, hourly_usd = 2.0 and tokens_per_second = 1500; "
            f"a free model needs explicit input = 0 and output = 0.")


def _candidate_names(model: str) -> list[str]:
    names = [model]
    stripped = _DATE_SUFFIX.sub("", model)
    if stripped != model:
        names.append(stripped)
    if "/" in model:  # "provider/model" -> "model"
        names.extend(_candidate_names(model.split("/", 1)[1]))
    return names
