"""A trained process reward model: a transformers backbone + a scalar head, read at the end of every step.

What it is for: `ModelPRM.load(dir)` reads what `trainer.prm.save_prm` writes (backbone in `AutoModel`
format, tokenizer, `prm_head.safetensors`, `prm_config.json`) and scores steps: `score_steps(prompt, steps)`
gives sigmoid probabilities that each step is right; `prm(response, prompt=...)` splits the response into
steps (the trajectories' rule), scores and aggregates them into a Verdict with `step_scores`. The token
layout (prompt + SEP + step + SEP + ..., read at the last SEP token after each step) is `trainer.prm`'s,
repeated here because `verifiers` imports nothing else of ours; a test asserts both give the same ids.
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

PRM_FORMAT = "selfplay-prm-v1"
CONFIG_FILE, HEAD_FILE = "prm_config.json", "prm_head.safetensors"


def prompt_text(tokenizer: Any, prompt: Any) -> str:
    """A string prompt as it is; chat messages through the chat template with the generation prompt."""
    if prompt is None:
        return ""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


def encode_steps(tokenizer: Any, prompt: Any, steps: list[str], separator: str, max_length: int):
    """(ids, positions) exactly as `trainer.prm.encode_steps`; None when the steps alone do not fit."""
    def tok(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    prompt_ids, sep_ids = tok(prompt_text(tokenizer, prompt)), tok(separator)
    if not sep_ids:
        raise ValueError("the step separator must produce at least one token")
    ids, positions = prompt_ids + sep_ids, []
    for step in steps:
        ids += tok(step) + sep_ids
        positions.append(len(ids) - 1)
    overflow = len(ids) - max_length
    if overflow > 0:
        if overflow > len(prompt_ids):
            return None
        ids, positions = ids[overflow:], [p - overflow for p in positions]
    return ids, positions


class ModelPRM:
    """A loaded PRM checkpoint used as a verifier (see the module docstring)."""

    name = "prm.model"
    version = "1"

    def __init__(self, backbone: Any, head: Any, tokenizer: Any, *, separator: str, max_length: int,
                 aggregation: str = DEFAULT_AGGREGATION, pass_threshold: float = 0.5, batch_size: int = 8,
                 split_separator: str | None = None, source: str = "<memory>") -> None:
        self.backbone, self.head, self.tokenizer = backbone.eval(), head.eval(), tokenizer
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
        head = torch.nn.Linear(meta["hidden_size"], 1).to(device)
        head.load_state_dict(load_file(os.path.join(path, HEAD_FILE)))
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        return cls(backbone, head, tokenizer, separator=meta["step_separator"], max_length=meta["max_length"],
                   source=path, **options)

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

    def _forward(self, batch: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        import torch

        device = self.head.weight.device
        pad = next(i for i in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0) if i is not None)
        width = max(len(ids) for ids, _ in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (row_ids, _) in enumerate(batch):
            ids[row, :len(row_ids)] = torch.tensor(row_ids)
            attention[row, :len(row_ids)] = 1
        with torch.no_grad():
            hidden = self.backbone(input_ids=ids.to(device), attention_mask=attention.to(device),
                                   use_cache=False).last_hidden_state
            probs = torch.sigmoid(self.head(hidden.to(self.head.weight.dtype)).squeeze(-1)).float().cpu()
        return [[float(probs[row, p]) for p in positions] for row, (_, positions) in enumerate(batch)]

    def __call__(self, response: str, prompt: Any = None, steps: list[str] | None = None) -> Verdict:
        steps = steps if steps is not None else split_steps(response, self.split_separator)
        return self.verdict(self.score_steps(prompt, steps) if steps else [], steps)

    def verdict(self, scores: list[float] | None, steps: list[str]) -> Verdict:
        """The Verdict for already computed step scores (None: did not fit)."""
        if scores is None:
            return Verdict.broken(f"prm: {len(steps)} steps do not fit in {self.max_length} tokens")
        return steps_verdict(scores, self.aggregation, self.pass_threshold, prm=self.source)
