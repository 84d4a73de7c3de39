"""Process reward model training: a causal LM backbone + a scalar head, BCE at the end of every step.

What it is for: rows in the TRL PRM format, `{"prompt", "completions": [step, ...], "labels": [...]}`, where a
label is a bool (hard, e.g. Math-Shepherd "some completion from here reaches the answer") or a float in
[0, 1] (soft: the fraction that did). A row is laid out as TRL's PRM trainer does:
    prompt_text + step_1 + SEP + step_2 + SEP + ...       (SEP = the step separator, "\n\n" by default)
each piece tokenized on its own, and the head is read at the LAST token of the SEP after each step: that
position has seen the prompt and every step up to this one. With the policy's own separator and a chat
prompt this is the text the policy wrote. Too long a row loses tokens from the start of its prompt; a
row whose steps alone do not fit is skipped (counted).
`confidence=True` adds one input to the head: the step's lowest token log-probability under the
backbone's own LM head (a frozen copy of it), i.e. how surprised the model is by the least likely token
of the step; the backbone is then frozen too (the log-probabilities must stay the model's) and only the
head learns. `verifiers.prm.model` repeats the layout and the feature to score (tests assert both give
the same ids, positions and scores), and loads what `save_prm` writes: the backbone
(`AutoModel.from_pretrained` format), the tokenizer, `prm_head.safetensors` and `prm_config.json`.
Training goes through the shared `trainer.loop` (accumulation, schedule, checkpoints).
What it does not do: label steps (the `selfplay prm-label` job does), or score at inference (`verifiers`).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from trainer.config import TrainConfig
from trainer.data import DataError, read_rows
from trainer.errors import ConfigError
from trainer.loop import StepLoss, train_loop

PRM_FORMAT = "selfplay-prm-v2"  # v2: TRL's layout (no separator after the prompt), optional confidence input
CONFIG_FILE, HEAD_FILE = "prm_config.json", "prm_head.safetensors"
DEFAULT_SEPARATOR = "\n\n"


# ---- layout (mirrored in verifiers/prm/model.py) --------------------------------------------------------
def prompt_text(tokenizer, prompt) -> str:
    """A string prompt as it is; chat messages through the chat template with the generation prompt."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


def encode_steps(tokenizer, prompt, steps: list[str], separator: str, max_length: int):
    """(ids, positions, spans): the layout's token ids, the index read for each step, and each step's own
    tokens as [start, end) (start >= 1: a first token has no log-probability); None if the steps do not fit."""
    def tok(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    prompt_ids, sep_ids = tok(prompt_text(tokenizer, prompt)), tok(separator)
    if not sep_ids:
        raise ConfigError("the step separator must produce at least one token")
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


def step_confidence(hidden, input_ids, lm_weight, spans):
    """[B, T] zeros but at each read position: the lowest log-probability of its step's tokens (0 if none).

    `spans` lists (row, read position, start, end); token t's log-probability is read from position t - 1."""
    feature = torch.zeros(input_ids.shape, dtype=hidden.dtype, device=hidden.device)
    if not spans:
        return feature
    logp = torch.log_softmax((hidden[:, :-1] @ lm_weight.T.to(hidden.dtype)).float(), dim=-1)
    token_logp = logp.gather(-1, input_ids[:, 1:, None]).squeeze(-1)      # [B, T-1]: token t+1 given <= t
    for row, position, start, end in spans:
        if end > start:
            feature[row, position] = token_logp[row, start - 1:end - 1].min().to(hidden.dtype)
    return feature


# ---- the model ---------------------------------------------------------------------------------------------
class ScalarHeadPRM(nn.Module):
    """`backbone` (a transformers base model) + a linear head: one logit per token (read at step ends).

    With `lm_weight` (the backbone's output embeddings), the head also reads `step_confidence` and the
    backbone is frozen."""

    def __init__(self, backbone, hidden_size: int | None = None, lm_weight: torch.Tensor | None = None):
        super().__init__()
        self.backbone = backbone
        self.confidence = lm_weight is not None
        size = (hidden_size or backbone.config.hidden_size) + (1 if self.confidence else 0)
        self.head = nn.Linear(size, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        if self.confidence:
            self.register_buffer("lm_weight", lm_weight.detach().clone())
            self.backbone.requires_grad_(False)

    def forward(self, input_ids, attention_mask=None, spans=None):
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        hidden = hidden.to(self.head.weight.dtype)
        if self.confidence:
            if spans is None:
                raise DataError("a PRM with the confidence input needs each step's token span (see prm_collate)")
            feature = step_confidence(hidden, input_ids, self.lm_weight, spans)
            hidden = torch.cat([hidden, feature.unsqueeze(-1)], dim=-1)
        return self.head(hidden).squeeze(-1)

    def head_state(self) -> dict:
        """What `prm_head.safetensors` holds: the head (+ the frozen LM head for the confidence input)."""
        state = {f"head.{k}": v for k, v in self.head.state_dict().items()}
        if self.confidence:
            state["lm_weight"] = self.lm_weight
        return state


def backbone_of(model):
    """The base model inside a causal LM (`model.model` for Llama/Qwen); a base model is returned as is."""
    prefix = getattr(model, "base_model_prefix", "")
    inner = getattr(model, prefix, None) if prefix else None
    return inner if isinstance(inner, nn.Module) and inner is not model else model


def load_prm_module(name_or_path: str, seed: int = 0, confidence: bool = False):
    """(ScalarHeadPRM, tokenizer, separator or None): from a saved PRM dir (its own `confidence` setting), or
    a fresh head on any causal LM (with the confidence input if asked)."""
    if os.path.isfile(os.path.join(name_or_path, CONFIG_FILE)):
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        meta = json.load(open(os.path.join(name_or_path, CONFIG_FILE)))
        if meta.get("format") != PRM_FORMAT:
            raise DataError(f"{name_or_path}: PRM format {meta.get('format')!r}, this trainer knows {PRM_FORMAT!r}; "
                            "train a new PRM from the base model")
        state = load_file(os.path.join(name_or_path, HEAD_FILE))
        module = ScalarHeadPRM(AutoModel.from_pretrained(name_or_path, local_files_only=True),
                               lm_weight=state.get("lm_weight"))
        module.head.load_state_dict({k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
        return module, AutoTokenizer.from_pretrained(name_or_path, local_files_only=True), meta["step_separator"]
    from trainer.models import load_model

    model, tokenizer = load_model(name_or_path, seed=seed)
    torch.manual_seed(seed)
    lm_weight = model.get_output_embeddings().weight if confidence else None
    return ScalarHeadPRM(backbone_of(model), lm_weight=lm_weight), tokenizer, None


def save_prm(module: ScalarHeadPRM, tokenizer, out_dir: str, separator: str, max_length: int) -> str:
    """Write the backbone, tokenizer, head and `prm_config.json` so `verifiers.prm.model.ModelPRM.load` reads them."""
    from safetensors.torch import save_file

    os.makedirs(out_dir, exist_ok=True)
    module.backbone.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    save_file({k: v.detach().cpu().contiguous() for k, v in module.head_state().items()},
              os.path.join(out_dir, HEAD_FILE))
    meta = {"format": PRM_FORMAT, "step_separator": separator, "max_length": max_length,
            "hidden_size": module.head.in_features - int(module.confidence), "confidence": module.confidence}
    with open(os.path.join(out_dir, CONFIG_FILE), "w") as fh:
        json.dump(meta, fh, indent=2)
    return out_dir


# ---- data ----------------------------------------------------------------------------------------------------
@dataclass
class PRMExample:
    ids: list[int]
    positions: list[int]
    spans: list[tuple[int, int]]
    targets: list[float]
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def label_value(label) -> float:
    """A hard (bool) or soft (float in [0, 1]) step label as a BCE target."""
    if isinstance(label, bool):
        return 1.0 if label else 0.0
    if isinstance(label, (int, float)) and math.isfinite(label) and 0.0 <= label <= 1.0:
        return float(label)
    raise DataError(f"a step label must be a bool or a number in [0, 1], got {label!r}")


def validate_prm_rows(rows: list[dict], source: str = "<rows>") -> list[dict]:
    """The PRM format with soft labels allowed: one label per step, bools or floats in [0, 1]."""
    if not rows:
        raise DataError(f"{source}: no rows; pass at least one example")
    for i, row in enumerate(rows):
        where = f"{source}, row {i + 1}"
        if not all(k in row for k in ("prompt", "completions", "labels")):
            raise DataError(f"{where}: a PRM row needs prompt, completions and labels")
        if not isinstance(row["completions"], list) or len(row["completions"]) != len(row["labels"]):
            raise DataError(f"{where}: 'labels' must have one entry per step in 'completions'")
        try:
            [label_value(label) for label in row["labels"]]
        except DataError as exc:
            raise DataError(f"{where}: {exc}") from None
    return rows


def encode_rows(tokenizer, rows: list[dict], separator: str, max_length: int) -> tuple[list[PRMExample], int]:
    """Encoded examples (rows without steps dropped) and the number of rows skipped because too long."""
    examples, skipped = [], 0
    for row in rows:
        if not row["completions"]:
            continue
        encoded = encode_steps(tokenizer, row["prompt"], list(row["completions"]), separator, max_length)
        if encoded is None:
            skipped += 1
            continue
        examples.append(PRMExample(*encoded, [label_value(x) for x in row["labels"]]))
    return examples, skipped


def prm_collate(examples: list[PRMExample], pad_id: int) -> dict:
    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    rows, cols, targets, spans = [], [], [], []
    for r, example in enumerate(examples):
        ids[r, :len(example)] = torch.tensor(example.ids)
        attention[r, :len(example)] = 1
        rows += [r] * len(example.positions)
        cols += example.positions
        targets += example.targets
        spans += [(r, p, s, e) for p, (s, e) in zip(example.positions, example.spans)]
    return {"input_ids": ids, "attention_mask": attention, "rows": torch.tensor(rows), "cols": torch.tensor(cols),
            "targets": torch.tensor(targets, dtype=torch.float32), "units": len(targets), "spans": spans,
            "tokens": int(attention.sum())}


# ---- loss and training -----------------------------------------------------------------------------------------
def step_bce_sum(logits: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, targets: torch.Tensor):
    """(summed BCE-with-logits at the step positions, number of correct hard calls at 0.5)."""
    picked = logits[rows, cols].float()
    loss = nn.functional.binary_cross_entropy_with_logits(picked, targets, reduction="sum")
    correct = ((picked > 0) == (targets > 0.5)).float().sum()
    return loss, correct


def prm_step_loss(model, batch) -> StepLoss:
    logits = model(batch["input_ids"], batch["attention_mask"], batch["spans"])
    loss, correct = step_bce_sum(logits, batch["rows"], batch["cols"], batch["targets"])
    return StepLoss(loss, {"step_acc": correct})


def train_prm(module: ScalarHeadPRM, tokenizer, rows: list[dict], config: TrainConfig | None = None,
              out_dir: str | None = None, separator: str = DEFAULT_SEPARATOR, source: str = "<rows>") -> dict:
    """Train `module` in place on PRM rows; with `out_dir`, metrics and checkpoints go to `out_dir/train`."""
    config = config or TrainConfig()
    validate_prm_rows(rows, source)
    examples, skipped = encode_rows(tokenizer, rows, separator, config.max_length)
    if not examples:
        raise DataError(f"{source}: no row with steps fits in max_length={config.max_length}")
    pad_id = next(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0) if i is not None)
    collate = partial(prm_collate, pad_id=pad_id)
    train_dir = os.path.join(out_dir, "train") if out_dir else None
    metrics = train_loop(module, examples, [len(e) for e in examples], collate, prm_step_loss, config, train_dir,
                         name="prm")
    return {**metrics, "examples": len(examples), "skipped_too_long": skipped,
            "steps_labelled": sum(len(e.targets) for e in examples)}


def run_prm(model_name: str, data_path: str, out_dir: str, config: TrainConfig | None = None,
            separator: str | None = None, confidence: bool = False) -> dict:
    """File-based PRM training: a causal LM (dir or tiny name) or a saved PRM, trained on `data_path`, saved."""
    config = config or TrainConfig()
    module, tokenizer, saved_separator = load_prm_module(model_name, seed=config.seed, confidence=confidence)
    separator = separator or saved_separator or DEFAULT_SEPARATOR
    rows = validate_prm_rows(read_rows(data_path), data_path)
    metrics = train_prm(module, tokenizer, rows, config, out_dir, separator, source=data_path)
    save_prm(module, tokenizer, out_dir, separator, config.max_length)
    with open(os.path.join(out_dir, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=2, default=str)
    return {**metrics, "model_dir": out_dir}
