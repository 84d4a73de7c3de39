"""Turn rows into token ids with loss masks, and batches of them into padded (or packed) tensors.

What it is for: the one place where chat formatting meets tokens. Text is always rendered by the tokenizer's own
chat template (so tiny and real models format identically), then tokenized once with character offsets; a token is
trained on when it starts inside an assistant turn (its content and its end-of-turn/eos token, nothing after eos).
What it does not do: read files (see `trainer.data`) or compute losses.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

IGNORE = -100


@dataclass
class Encoded:
    """One sequence: `ids`, and `mask[i]` = 1 where token i is a training target (assistant / completion)."""

    ids: list[int]
    mask: list[int]
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("this tokenizer has no chat_template; chat data needs one (set tokenizer.chat_template)")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: list[dict], first_trained: int = 0) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of assistant turns at index >= `first_trained`.

    A span runs from the end of the generation prompt to the end of that turn's rendering, which is how the model
    will see it at sampling time. Needs a prefix-stable template (true of ChatML/Llama/Qwen2.5 templates).
    """
    full = render(tokenizer, messages)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or i < first_trained:
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True)
        through = render(tokenizer, messages[: i + 1])
        if not (full.startswith(through) and through.startswith(before)):
            raise ValueError("the chat template is not prefix-stable (rendering a conversation's first turns is not a "
                             "prefix of rendering all of it), so assistant tokens cannot be located")
        spans.append((len(before), len(through)))
    return full, spans


def _mask_from_offsets(ids: list[int], offsets: list[tuple[int, int]], spans, eos_id: int | None) -> list[int]:
    starts = [s for s, _ in spans]
    mask = [0] * len(ids)
    in_span_after_eos = set()
    for t, (begin, _end) in enumerate(offsets):
        k = bisect.bisect_right(starts, begin) - 1
        if k >= 0 and begin < spans[k][1] and k not in in_span_after_eos:
            mask[t] = 1
            if ids[t] == eos_id:  # train the eos that ends the turn, not the template's whitespace after it
                in_span_after_eos.add(k)
    return mask


def encode_texts(tokenizer, texts: list[str], spans: list[list[tuple[int, int]]], max_length: int) -> list[Encoded]:
    """Tokenize many rendered texts in one call and mark tokens that start inside the given spans."""
    batch = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for ids, offsets, row_spans in zip(batch["input_ids"], batch["offset_mapping"], spans):
        mask = _mask_from_offsets(ids, offsets, row_spans, tokenizer.eos_token_id)
        out.append(Encoded(ids[:max_length], mask[:max_length], {"truncated": len(ids) > max_length}))
    return out


def encode_sft(tokenizer, rows: list[dict], max_length: int) -> list[Encoded]:
    """SFT rows -> sequences: `{"messages"}` trained on assistant tokens only, TRL's `{"prompt", "completion"}`
    on the completion, `{"text"}` on every token (in row order)."""
    out: list[Encoded | None] = [None] * len(rows)
    batched = []  # (row index, rendered text, trained spans): tokenized in one call
    for i, row in enumerate(rows):
        if "messages" in row:
            batched.append((i, *assistant_spans(tokenizer, row["messages"])))
        elif "completion" in row:
            out[i] = encode_prompt_completion(tokenizer, row["prompt"], row["completion"], max_length)
        else:
            batched.append((i, row["text"], [(0, len(row["text"]))]))
    if batched:
        index, texts, spans = zip(*batched)
        for i, enc in zip(index, encode_texts(tokenizer, list(texts), list(spans), max_length)):
            out[i] = enc
    return out


def prompt_text(tokenizer, prompt) -> str:
    """A prompt as the model sees it before answering: chat messages get the generation prompt; strings stay as is."""
    return prompt if isinstance(prompt, str) else render(tokenizer, prompt, add_generation_prompt=True)


def encode_prompt_completion(tokenizer, prompt, completion, max_length: int) -> Encoded:
    """One prompt + completion sequence; trained tokens = the completion.

    `completion` is a string (the text a policy generated; the eos that ended it is appended) or a list of
    assistant messages (rendered through the chat template after the prompt, as in TRL's conversational format).
    """
    if isinstance(completion, str):
        p_ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        c_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            c_ids = c_ids + [tokenizer.eos_token_id]
        ids, mask = p_ids + c_ids, [0] * len(p_ids) + [1] * len(c_ids)
    else:
        prompt_messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        text, spans = assistant_spans(tokenizer, prompt_messages + list(completion), first_trained=len(prompt_messages))
        return encode_texts(tokenizer, [text], [spans], max_length)[0]
    return Encoded(ids[:max_length], mask[:max_length], {"truncated": len(ids) > max_length})


def pad_batch(seqs: list[Encoded], pad_id: int) -> dict:
    """Right-pad to the longest sequence: input_ids, attention_mask, and labels (-100 where not trained)."""
    import torch

    width = max(len(s) for s in seqs)
    ids, attention, labels = [], [], []
    for seq in seqs:
        fill = width - len(seq)
        ids.append(seq.ids + [pad_id] * fill)
        attention.append([1] * len(seq) + [0] * fill)
        labels.append([t if m else IGNORE for t, m in zip(seq.ids, seq.mask)] + [IGNORE] * fill)
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(attention), "labels": torch.tensor(labels)}


def pack(seqs: list[Encoded], max_length: int) -> list[Encoded]:
    """Concatenate sequences (in order) into rows of at most `max_length` tokens; `extra["position_ids"]` restart at 0
    for each original sequence, which `transformers` turns into a block-diagonal causal mask (no cross-talk)."""
    packed, ids, mask, pos = [], [], [], []
    for seq in seqs:
        if ids and len(ids) + len(seq) > max_length:
            packed.append(Encoded(ids, mask, {"position_ids": pos}))
            ids, mask, pos = [], [], []
        ids, mask, pos = ids + seq.ids, mask + seq.mask, pos + list(range(len(seq)))
    if ids:
        packed.append(Encoded(ids, mask, {"position_ids": pos}))
    return packed


def packed_batch(seqs: list[Encoded], pad_id: int) -> dict:
    """Packed rows, right-padded; no attention_mask (position_ids carry the boundaries; pads form their own block)."""
    import torch

    batch = pad_batch(seqs, pad_id)
    width = batch["input_ids"].shape[1]
    position_ids = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        n = len(seq)
        position_ids[row, :n] = torch.tensor(seq.extra["position_ids"])
        position_ids[row, n:] = torch.arange(width - n)  # padding: a separate block, never a target
    del batch["attention_mask"]
    batch["position_ids"] = position_ids
    return batch
