"""The server's cap on `n` (choices per request): known defaults, and the cap read out of a refusal.

What it is for: `agents.llm.sampling` asks for `min(remaining, cap)` choices per request. The cap comes from,
in order: the sampling call's `max_n` argument, the LLM's `max_n` attribute (configured, a provider default, or
learned from an earlier refusal in this job), else none known. This module holds the provider defaults and
parses an HTTP 400 into "the server allows at most N choices per request":

- OpenAI: `Invalid 'n': integer above maximum value. Expected a value <= 128, but got 130 instead.`
  (param `n`, code `integer_above_max_value`); reasoning models: `Unsupported value: 'n' does not support 4 with
  this model. Only the default (1) value is supported.`; older wording `130 is greater than the maximum of 128 -
  'n'`.
- vLLM (`SamplingParams._verify_args`): `n must be at most 16384, got 20000. To increase this limit, set the
  VLLM_MAX_N_SEQUENCES environment variable.`; `n must be 1 when using greedy sampling, got 4.` (that one holds
  for greedy requests only, so it is not remembered).
- this repo's mock server: `n must be at most 2 on this server (got 4)`.

What it does not do: send requests or decide how to split K (see `agents.llm.sampling`); it never guesses a cap
from a refusal that does not name `n` (a 400 about `max_tokens` or the context length is not an n cap).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

OPENAI_MAX_N = 128
"""OpenAI's chat completions limit on `n` (its 400: "Expected a value <= 128")."""

VLLM_MAX_N = 16384
"""vLLM's default `VLLM_MAX_N_SEQUENCES`: the most `n` its server accepts unless the operator changes it."""

UNCAPPED_CHUNK = 1024
"""Choices per request when no cap is known: a server that accepts any `n` (vLLM up to 16384) still gets
bounded requests, so one reply is never K choices of JSON and one failure never re-pays K samples."""

_N = r"(?<![\w.$-])['\"`]?n['\"`]?(?![\w-])"  # the parameter n, not a letter of max_tokens or best_of
_GAP = r".{0,80}?"  # what may stand between "n" and its bound (OpenAI puts a full stop there)
_CAP_PATTERNS = (
    re.compile(_N + _GAP + r"\bexpected a value\s*<=\s*(\d+)", re.IGNORECASE),           # OpenAI
    re.compile(_N + r"\s+must be at most\s+(\d+)", re.IGNORECASE),                    # vLLM, mock
    re.compile(_N + _GAP + r"(?:\bless than or equal to|\bat most|<=|\u2264)\s*(\d+)", re.IGNORECASE),
    re.compile(r"\bis greater than the maximum of\s+(\d+)\s*-\s*" + _N, re.IGNORECASE),  # older OpenAI
)
_ONLY_ONE = (
    re.compile(_N + r"\s+must be 1\b", re.IGNORECASE),                                  # vLLM greedy
    re.compile(_N + _GAP + r"\bdoes not support\b" + _GAP + r"\bonly the default \(1\)", re.IGNORECASE),
    re.compile(_N + _GAP + r"\b(?:not supported|unsupported)\b", re.IGNORECASE),
)
_FOR_THIS_REQUEST_ONLY = re.compile(r"\bgreedy\b", re.IGNORECASE)


@dataclass(frozen=True)
class NCap:
    """A refusal read as "at most `cap` choices per request"; `remember` is False when it holds for this request's
    parameters only (vLLM refuses n > 1 for greedy sampling, not for the job)."""

    cap: int
    remember: bool = True


def parse_n_refusal(message: str, *, asked: int, param: str | None = None) -> NCap | None:
    """The cap a 400's message states for `n`, or None when it is not about `n`: `param` (the error body's
    `param`, where the server gives one) names another parameter, no pattern matches, or the stated cap would
    not have refused `asked` (so it cannot be what refused it)."""
    if param is not None and param != "n":
        return None
    text = " ".join(message.split())
    for pattern in _ONLY_ONE:
        if pattern.search(text):
            return NCap(1, remember=not _FOR_THIS_REQUEST_ONLY.search(text))
    for pattern in _CAP_PATTERNS:
        found = pattern.search(text)
        if found:
            cap = int(found.group(1))
            return NCap(cap) if 1 <= cap < asked else None
    return None


def default_max_n(base_url: str | None) -> int | None:
    """The cap known for an endpoint: OpenAI's API (no base URL, or api.openai.com) 128; otherwise None."""
    if base_url is None:
        return OPENAI_MAX_N
    host = urlparse(base_url).hostname or ""
    return OPENAI_MAX_N if host == "api.openai.com" else None


def known_cap(llm: Any, override: int | None = None) -> int | None:
    """The cap to plan with: `override` (the call's `max_n`), else the LLM's `max_n`; 1 when it refuses n > 1."""
    if not getattr(llm, "supports_n", True):
        return 1
    caps = [c for c in (override, getattr(llm, "max_n", None)) if c is not None]
    if any(type(c) is not int or c < 1 for c in caps):
        raise ValueError(f"max_n must be a positive integer or None, got {caps}")
    return min(caps) if caps else None


def remember_cap(llm: Any, cap: int) -> None:
    """Keep a learned cap on the LLM for the rest of the job (only ever lowered); n = 1 also clears `supports_n`."""
    current = getattr(llm, "max_n", None)
    if current is None or cap < current:
        llm.max_n = cap
    if cap == 1:
        llm.supports_n = False
