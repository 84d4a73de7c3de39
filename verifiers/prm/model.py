"""A trained process reward model: a transformers backbone + a scalar head, read at the end of every step.

What it is for: `ModelPRM.load(dir)` reads what `trainer.prm.save_prm` writes (backbone in `AutoModel`
format, tokenizer, `prm_head.safetensors`, `prm_config.json`) and scores steps: `score_steps(prompt, steps)`
gives sigmoid probabilities that each step is right; `prm(response, prompt=...)` splits the response into
steps (the trajectories' rule), scores and aggregates them into a Verdict with `step_scores`. The token
layout (TRL's: prompt + step + SEP + step + SEP + ..., read at the last SEP token after each step) and
the optional confidence input (the step's lowest token log-probability under a frozen copy of the
backbone's LM head) are `trainer.prm`'s, repeated here because `verifiers` imports nothing else of ours;
tests assert both give the same ids and the same scores.
torch, transformers and safetensors are imported inside functions only.
What it does not do: train (see `trainer.prm`), download (a local directory only), or score a solution
longer than the model's window (that is a Verdict with `error`, not a guess).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from verifiers.prm.aggregate import DEFAULT_AGGREGATION, steps_verdict
from verifiers.prm.steps import split_steps
from verifiers.verdict import Verdict

PRM_FORMAT = "selfplay-prm-v2"
CONFIG_FILE, HEAD_FILE = "prm_config.json", "prm_head.safetensors"


def prompt_text(tokenizer: Any, prompt: Any) -> str:
    """A string prompt as it is; chat messages through the chat template with the generation prompt."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


def encode_steps(tokenizer: Any, prompt: Any, steps: list[str], separator: str, max_length: int):
    """(ids, positions, spans) exactly as `trainer.prm.encode_steps`; None when the steps alone do not fit."""
    def tok(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    prompt_ids, sep_ids = tok(prompt_text(tokenizer, prompt)), tok(separator)
    if not sep_ids:
        raise ValueError("the step separator must produce at least one token")
    ids, positions, spans = list(prompt_ids), [], []
    for step in steps:
        start = len(ids)
        ids += tok(step)
        spans.append((start, len(ids)))
        ids += sep_ids
        positions.append(len(ids) - 1)
    overflow = len(ids) - max_length
    if overflow > 0:
        if overflow > len(prompt_ids):
            return None
        ids, positions = ids[overflow:], [p - overflow for p in positions]
        spans = [(s - overflow, e - overflow) for s, e in spans]
    return ids, positions, [(max(s, 1), max(e, 1)) for s, e in spans]


def step_confidence(hidden: Any, input_ids: Any, lm_weight: Any, spans: list[tuple[int, int, int, int]]) -> Any:
    """As `trainer.prm.step_confidence`: at each read position, the lowest log-probability of its step's tokens."""
    import torch

    feature = torch.zeros(input_ids.shape, dtype=hidden.dtype, device=hidden.device)
    if not spans:
        return feature
    logp = torch.log_softmax((hidden[:, :-1] @ lm_weight.T.to(hidden.dtype)).float(), dim=-1)
    token_logp = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    for row, position, start, end in spans:
        if end > start:
            feature[row, position] = token_logp[row, start - 1:end - 1].min().to(hidden.dtype)
    return feature


class ModelPRM:
    """A loaded PRM checkpoint used as a verifier (see the module docstring)."""

    name = "prm.model"
    version = "1"

    def __init__(self, backbone: Any, head: Any, tokenizer: Any, *, separator: str, max_length: int,
                 aggregation: str = DEFAULT_AGGREGATION, pass_threshold: float = 0.5, batch_size: int = 8,
                 split_separator: str | None = None, source: str = "<memory>", lm_weight: Any = None) -> None:
        self.backbone, self.head, self.tokenizer = backbone.eval(), head.eval(), tokenizer
        self.lm_weight = lm_weight  # set: the head also reads `step_confidence`
        self.separator, self.max_length = separator, max_length
        self.aggregation, self.pass_threshold, self.batch_size = aggregation, pass_threshold, batch_size
        self.split_separator = split_separator  # how responses are cut into steps (None: the trajectories' rule)
        self.source = source

    @classmethod
    def load(cls, path: str, *, device: str | None = None, **options: Any) -> "ModelPRM":
        """Load a PRM directory written by `trainer.prm.save_prm` (local files only)."""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        meta_path = os.path.join(path, CONFIG_FILE)
        if not os.path.isfile(meta_path):
            raise FileNotFoundError(f"{path}: no {CONFIG_FILE}; is this a PRM written by trainer.prm.save_prm?")
        with open(meta_path) as fh:
            meta = json.load(fh)
        if meta.get("format") != PRM_FORMAT:
            raise ValueError(f"{path}: PRM format {meta.get('format')!r}, this reader knows {PRM_FORMAT!r}")
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        backbone = AutoModel.from_pretrained(path, local_files_only=True).to(device)
        state = load_file(os.path.join(path, HEAD_FILE))
        confidence = bool(meta.get("confidence"))
        head = torch.nn.Linear(meta["hidden_size"] + int(confidence), 1).to(device)
        head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
        lm_weight = state["lm_weight"].to(device) if confidence else None
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return cls(backbone, head, tokenizer, separator=meta["step_separator"], max_length=meta["max_length"],
                   source=path, lm_weight=lm_weight, **options)

    def cache_key_parts(self) -> dict[str, Any]:
        head = self.head.weight.detach().cpu().numpy().tobytes()
        return {"source": self.source, "head": hashlib.sha256(head).hexdigest()[:16], "separator": self.separator,
                "split_separator": self.split_separator, "aggregation": self.aggregation,
                "pass_threshold": self.pass_threshold}

    def score_steps(self, prompt: Any, steps: list[str]) -> list[float] | None:
        """P(step is right) for each step; None when the steps do not fit in `max_length` tokens."""
        return self.score_many([(prompt, steps)])[0]

    def score_many(self, items: list[tuple[Any, list[str]]]) -> list[list[float] | None]:
        """`score_steps` for many (prompt, steps) pairs, batched by `batch_size`."""
        encoded = [encode_steps(self.tokenizer, p, s, self.separator, self.max_length) if s else None
                   for p, s in items]
        results: list[list[float] | None] = [None if e is None else [] for e in encoded]
        todo = [i for i, e in enumerate(encoded) if e is not None]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start:start + self.batch_size]
            for i, scores in zip(chunk, self._forward([encoded[i] for i in chunk])):
                results[i] = scores
        return results

    def _forward(self, batch: list[tuple[list[int], list[int], list[tuple[int, int]]]]) -> list[list[float]]:
        import torch

        device = self.head.weight.device
        pad = next(i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0) if i is not None)
        width = max(len(ids) for ids, _, _ in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (row_ids, _, _) in enumerate(batch):
            ids[row, :len(row_ids)] = torch.tensor(row_ids)
            attention[row, :len(row_ids)] = 1
        ids = ids.to(device)
        with torch.no_grad():
            hidden = self.backbone(input_ids=ids, attention_mask=attention.to(device),
                                   use_cache=False).last_hidden_state.to(self.head.weight.dtype)
            if self.lm_weight is not None:
                spans = [(row, p, s, e) for row, (_, positions, step_spans) in enumerate(batch)
                         for p, (s, e) in zip(positions, step_spans)]
                hidden = torch.cat([hidden, step_confidence(hidden, ids, self.lm_weight, spans).unsqueeze(-1)], -1)
            probs = torch.sigmoid(self.head(hidden).squeeze(-1)).float().cpu()
        return [[float(probs[row, p]) for p in positions] for row, (_, positions, _) in enumerate(batch)]

    def __call__(self, response: str, prompt: Any = None, steps: list[str] | None = None) -> Verdict:
        steps = steps if steps is not None else split_steps(response, self.split_separator)
        return self.verdict(self.score_steps(prompt, steps) if steps else [], steps)

    def verdict(self, scores: list[float] | None, steps: list[str]) -> Verdict:
        """The Verdict for already computed step scores (None: did not fit)."""
        if scores is None:
            return Verdict.broken(f"prm: {len(steps)} steps do not fit in {self.max_length} tokens")
        return steps_verdict(scores, self.aggregation, self.pass_threshold, prm=self.source)
