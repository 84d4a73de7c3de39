"""The sampling loop of the `local` backend: prefill each prompt once, expand its KV cache to K rows, decode.

What it is for: `generate_batch(model, requests, ...)` runs one batch of chat requests (already tokenised) through
an HF causal LM in as few forward passes as it can:
  1. prompts are de-duplicated and left-padded into one prefill pass (a prompt is computed once however many
     requests or samples share it);
  2. the KV cache is gathered along the batch dimension so that each prompt's row becomes `n` rows
     (`Cache.batch_select_indices`, the same gather `generate()` uses for beams);
  3. all rows of all requests decode together, one token per step; a row ends on an eos token, a stop string or
     its own `max_tokens`, and finished rows are dropped from the batch (cache rows included).
Sampling is per row (temperature, top-p, greedy at temperature 0) and reproducible: each row draws its uniforms
from its own `torch.Generator` seeded with `seed + j`, so row j does not depend on what else was in the batch.
Each row keeps its sampled token ids (the eos included when it ended on one) and the log-probability of each
under the model's unscaled distribution (log-softmax of the logits: temperature 1, no top-p), which is what a
trainer recomputes, so GRPO can take its ratio against the policy that sampled.
What it does not do: tokenise chat messages, price, batch requests over time (`agents.llm.batcher`), or run
asynchronously (it is plain blocking torch code, meant for one worker thread).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

STOP, LENGTH = "stop", "length"


@dataclass
class GenRequest:
    """One chat request, tokenised: `n` samples of `prompt_ids`."""

    prompt_ids: list[int]
    n: int = 1
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class GenRow:
    """One finished sample: its tokens (eos included when it ended on eos), text, why it ended, and per token the
    log-probability under the model's unscaled distribution."""

    token_ids: list[int]
    text: str
    finish_reason: str
    logprobs: list[float] = field(default_factory=list)


@dataclass
class GenOutput:
    """The samples of one request, and whether its prompt's prefill was shared with an earlier request."""

    rows: list[GenRow]
    prompt_tokens: int
    shared_prefill: bool = False

    @property
    def completion_tokens(self) -> int:
        return sum(len(r.token_ids) for r in self.rows)


@dataclass
class _Row:
    request: int
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str]
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    cut_text: str | None = None  # the text up to a stop string, once one appeared
    finish_reason: str | None = None


Decode = Callable[[list[int]], str]


@torch.inference_mode()
def generate_batch(model: Any, requests: list[GenRequest], *, eos_ids: set[int], pad_id: int, decode: Decode,
                   fallback_generator: torch.Generator | None = None) -> list[GenOutput]:
    """Run `requests` to completion together; return one `GenOutput` per request, in order."""
    prompts, prompt_of, shared = _dedupe_prompts(requests)
    device = _device_of(model)
    logits, cache, mask = _prefill(model, prompts, pad_id, device)
    rows = _make_rows(requests)
    row_prompt = torch.tensor([prompt_of[r.request] for r in rows], device=device)
    cache.batch_select_indices(row_prompt)
    logits, mask = logits[row_prompt], mask[row_prompt]
    uniforms = _row_uniforms(requests, fallback_generator).to(device)
    temps, top_ps = _row_tensor(rows, "temperature", device), _row_tensor(rows, "top_p", device)
    active = torch.arange(len(rows), device=device)
    step = 0
    while True:
        tokens = sample_next(logits, temps[active], top_ps[active], uniforms[active, step])
        logps = token_logprobs(logits, tokens)
        keep = _advance_rows(rows, active.tolist(), tokens.tolist(), eos_ids, decode, logps.tolist())
        if not keep:
            break
        if len(keep) < len(active):
            kept = torch.tensor(keep, device=device)
            cache.batch_select_indices(kept)
            mask, tokens, active = mask[kept], tokens[kept], active[kept]
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        logits = _decode_step(model, tokens, mask, cache)
        step += 1
    return _outputs(requests, rows, shared, eos_ids, decode)


def sample_next(logits: torch.Tensor, temps: torch.Tensor, top_ps: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """One token per row by inverse-CDF sampling with the row's uniform `u`; argmax where temperature is 0.

    Top-p keeps the smallest set of most likely tokens whose mass reaches `top_p` (the first token always).
    """
    logits = logits.float()
    greedy = logits.argmax(dim=-1)
    scaled = logits / temps.clamp(min=1e-6).unsqueeze(1)
    probs = torch.softmax(scaled, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_ps.unsqueeze(1), 0.0)
    cdf = sorted_probs.cumsum(dim=-1)
    target = (u * cdf[:, -1]).unsqueeze(1)
    pick = torch.searchsorted(cdf, target, right=True).clamp(max=cdf.shape[1] - 1)
    sampled = order.gather(1, pick).squeeze(1)
    return torch.where(temps == 0, greedy, sampled)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log p(token) per row under the unscaled distribution (log-softmax of the raw logits, in float32)."""
    return torch.log_softmax(logits.float(), dim=-1).gather(1, tokens.unsqueeze(1)).squeeze(1)


def _dedupe_prompts(requests: list[GenRequest]) -> tuple[list[list[int]], list[int], list[bool]]:
    seen: dict[tuple[int, ...], int] = {}
    prompts, prompt_of, shared = [], [], []
    for req in requests:
        key = tuple(req.prompt_ids)
        shared.append(key in seen)
        if key not in seen:
            seen[key] = len(prompts)
            prompts.append(req.prompt_ids)
        prompt_of.append(seen[key])
    return prompts, prompt_of, shared


def _device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


def _prefill(model: Any, prompts: list[list[int]], pad_id: int, device: torch.device):
    """Left-padded forward pass over the distinct prompts: last-position logits, the cache, the attention mask."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, prompt in enumerate(prompts):
        ids[i, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
        mask[i, width - len(prompt):] = 1
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                **_last_logits_only(model))
    cache = getattr(out, "cache", None)  # transformers >= 5.x; `past_key_values` before
    if cache is None:
        cache = getattr(out, "past_key_values", None)
    if cache is None or not hasattr(cache, "batch_select_indices"):
        raise RuntimeError(f"{type(model).__name__} returned no expandable KV cache (needs a transformers Cache)")
    return out.logits[:, -1, :], cache, mask


def _decode_step(model: Any, tokens: torch.Tensor, mask: torch.Tensor, cache: Any) -> torch.Tensor:
    positions = (mask.sum(-1, keepdim=True) - 1)
    out = model(input_ids=tokens.unsqueeze(1), attention_mask=mask, position_ids=positions,
                **{_cache_argument(model): cache}, use_cache=True)
    return out.logits[:, -1, :]


_CACHE_ARG: dict[type, str] = {}


def _cache_argument(model: Any) -> str:
    """`cache` where the model's forward takes it (transformers >= 5.x deprecates `past_key_values`, removal
    announced for 5.40), else `past_key_values` (older releases)."""
    kind = type(model)
    if kind not in _CACHE_ARG:
        import inspect

        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft wrapper takes **kwargs
        try:
            params = inspect.signature(base.forward).parameters
        except (TypeError, ValueError):
            params = {}
        _CACHE_ARG[kind] = "cache" if "cache" in params else "past_key_values"
    return _CACHE_ARG[kind]


_KEEPS_LAST: dict[type, bool] = {}


def _last_logits_only(model: Any) -> dict[str, int]:
    """`logits_to_keep=1` where the model supports it (saves a [prompts x length x vocab] tensor)."""
    import inspect

    cls = type(model)
    if cls not in _KEEPS_LAST:
        forward = getattr(getattr(model, "get_base_model", lambda: model)(), "forward", model.forward)
        _KEEPS_LAST[cls] = "logits_to_keep" in inspect.signature(forward).parameters
    return {"logits_to_keep": 1} if _KEEPS_LAST[cls] else {}


def _make_rows(requests: list[GenRequest]) -> list[_Row]:
    return [_Row(request=i, temperature=req.temperature, top_p=req.top_p, max_tokens=req.max_tokens,
                 stop=[s for s in req.stop if s])
            for i, req in enumerate(requests) for _ in range(req.n)]


def _row_tensor(rows: list[_Row], name: str, device: torch.device) -> torch.Tensor:
    return torch.tensor([float(getattr(r, name)) for r in rows], device=device)


def _row_uniforms(requests: list[GenRequest], fallback: torch.Generator | None) -> torch.Tensor:
    """[rows, longest max_tokens] uniforms: row j of a seeded request from `Generator(seed + j)`."""
    width = max(req.max_tokens for req in requests)
    blocks = []
    for req in requests:
        if req.seed is None:
            block = torch.rand((req.n, req.max_tokens), generator=fallback)
        else:
            block = torch.stack([torch.rand(req.max_tokens, generator=torch.Generator().manual_seed(req.seed + j))
                                 for j in range(req.n)])
        blocks.append(torch.nn.functional.pad(block, (0, width - req.max_tokens), value=0.5))
    return torch.cat(blocks)


def _advance_rows(rows: list[_Row], active: list[int], tokens: list[int], eos_ids: set[int],
                  decode: Decode, logprobs: list[float] | None = None) -> list[int]:
    """Append each active row's new token and end rows that are done; return positions (in `active`) still going."""
    keep = []
    for position, (row_id, token) in enumerate(zip(active, tokens)):
        row = rows[row_id]
        row.tokens.append(token)
        if logprobs is not None:
            row.logprobs.append(round(logprobs[position], 6))
        if token in eos_ids:
            row.finish_reason = STOP
        elif row.stop and _cut_at_stop(row, decode):
            row.finish_reason = STOP
        elif len(row.tokens) >= row.max_tokens:
            row.finish_reason = LENGTH
        else:
            keep.append(position)
    return keep


def _cut_at_stop(row: _Row, decode: Decode) -> bool:
    """True (and `row.cut_text` set to the text before it) when the row's text now contains one of its stop strings."""
    text = decode(row.tokens)
    hits = [text.find(s) for s in row.stop if s in text]
    if not hits:
        return False
    row.cut_text = text[:min(hits)]
    return True


def _outputs(requests: list[GenRequest], rows: list[_Row], shared: list[bool], eos_ids: set[int],
             decode: Decode) -> list[GenOutput]:
    outputs = [GenOutput(rows=[], prompt_tokens=len(req.prompt_ids), shared_prefill=shared[i])
               for i, req in enumerate(requests)]
    for row in rows:
        if row.cut_text is not None:
            text = row.cut_text
        else:  # the eos token that ended a row is counted in usage but is not part of the text
            text = decode(row.tokens[:-1] if row.tokens and row.tokens[-1] in eos_ids else row.tokens)
        outputs[row.request].rows.append(GenRow(token_ids=row.tokens, text=text, finish_reason=row.finish_reason or LENGTH,
                                                logprobs=row.logprobs))
    return outputs
