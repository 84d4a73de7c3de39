"""Turn rows into token ids with loss masks, and batches of them into padded (or packed) tensors.

What it is for: the one place where chat formatting meets tokens. Text is always rendered by the tokenizer's own
chat template (so tiny and real models format identically), then tokenized once with character offsets; a token is
trained on when it starts inside an assistant turn (its content and its end-of-turn/eos token, nothing after eos).
Sampled token ids: a row that carries the ids its completion was sampled as (`completion_token_ids` of an SFT
row, `chosen_token_ids` / `rejected_token_ids` of a preference row, `completion_token_ids[j]` of an RL group; see
`selfplay.datasets`) is trained on those ids, not on a re-encoding of its text (which does not always round-trip
through the tokenizer): the prompt (and any earlier turns) is still rendered by the chat template with the
generation prompt, exactly as the sampler saw it, and the ids are appended as sampled, so the eos is there only
when the sampler ended on it. Ids that do not decode to the completion's text (another tokenizer, an edited
turn) are not trusted: that row falls back to its text. `Encoded.extra["sampled"]` says which path was taken; the
sampled ids start at position `extra["tail_start"]`, and `extra["logprobs"]` (when the row has them) holds their
sampling log-probs, `logprobs[i]` for token `tail_start + i` (truncation applied). Earlier assistant turns of a
multi-turn row are still trained as text, without log-probs.
What it does not do: read files (see `trainer.data`) or compute losses.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from trainer.errors import ModelError

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
        raise ModelError("this tokenizer has no chat_template; chat data needs one (set tokenizer.chat_template)")
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
            raise ModelError("the chat template is not prefix-stable (rendering a conversation's first turns is not a "
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
    """SFT rows -> sequences: `{"messages"}` trained on assistant tokens only (the last one as sampled when the row
    has `completion_token_ids`), TRL's `{"prompt", "completion"}` on the completion, `{"text"}` on every token."""
    out: list[Encoded | None] = [None] * len(rows)
    batched = []  # (row index, rendered text, trained spans): tokenized in one call
    for i, row in enumerate(rows):
        sampled = (encode_sampled(tokenizer, row["messages"], row["completion_token_ids"], max_length)
                   if "messages" in row and row.get("completion_token_ids") else None)
        if sampled is not None:
            out[i] = sampled
        elif "messages" in row:
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


def encode_prompt_completion(tokenizer, prompt, completion, max_length: int, token_ids: list[int] | None = None,
                             logprobs: list[float] | None = None) -> Encoded:
    """One prompt + completion sequence; trained tokens = the completion.

    `completion` is a string (the text a policy generated; the eos that ended it is appended) or a list of
    assistant messages (rendered through the chat template after the prompt, as in TRL's conversational format).
    `token_ids`: the completion (its last message) as sampled; used instead of re-encoding the text when they
    decode to it (see the module docstring), with `logprobs` (one per id) kept in `extra["logprobs"]`.
    """
    if token_ids:
        sampled = _encode_sampled_completion(tokenizer, prompt, completion, token_ids, max_length, logprobs)
        if sampled is not None:
            return sampled
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


def encode_pair(tokenizer, row: dict, max_length: int) -> tuple[Encoded, Encoded]:
    """A preference row's chosen and rejected sequences, each on its sampled ids when the row carries them."""
    chosen, rejected = (encode_prompt_completion(tokenizer, row["prompt"], row[key], max_length,
                                                 token_ids=row.get(f"{key}_token_ids")) for key in ("chosen", "rejected"))
    return chosen, rejected


def group_sampled(row: dict, j: int) -> tuple[list[int] | None, list[float] | None]:
    """The sampled ids and log-probs of completion `j` of an RL-group row (None, None where it has none)."""
    ids, logprobs = row.get("completion_token_ids") or [], row.get("completion_logprobs") or []
    return (ids[j] if j < len(ids) else None), (logprobs[j] if j < len(logprobs) else None)


def sampled_matches(tokenizer, token_ids: list[int], text: str) -> bool:
    """True when `token_ids` decode to `text` (or to `text` then a stop string that cut it): the same tokenizer,
    the same turn."""
    try:
        decoded = tokenizer.decode(list(token_ids), skip_special_tokens=True)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return decoded.startswith(text)


def encode_sampled(tokenizer, messages: list[dict], token_ids: list[int], max_length: int, first_trained: int = 0,
                   logprobs: list[float] | None = None) -> Encoded | None:
    """`messages[-1]` (an assistant turn) as the ids it was sampled as, after the template-rendered conversation
    before it (its assistant turns at index >= `first_trained` trained as text); None if the ids do not match it."""
    last = messages[-1] if messages else {}
    if last.get("role") != "assistant" or not sampled_matches(tokenizer, token_ids, last.get("content") or ""):
        return None
    head = list(messages[:-1])
    text = render(tokenizer, head, add_generation_prompt=True)
    spans: list[tuple[int, int]] = []
    if any(m["role"] == "assistant" for m in head[first_trained:]):
        full, spans = assistant_spans(tokenizer, head, first_trained)
        if not text.startswith(full):
            raise ModelError("the chat template is not prefix-stable (the generation prompt changes the turns before "
                             "it), so the sampled turn cannot be placed after them")
    prefix = encode_texts(tokenizer, [text], [spans], max_length=10**9)[0]
    return _with_tail(prefix.ids, prefix.mask, token_ids, max_length, logprobs)


def _encode_sampled_completion(tokenizer, prompt, completion, token_ids, max_length, logprobs) -> Encoded | None:
    if isinstance(completion, str):
        if not sampled_matches(tokenizer, token_ids, completion):
            return None
        p_ids = tokenizer(prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
        return _with_tail(list(p_ids), [0] * len(p_ids), token_ids, max_length, logprobs)
    prompt_messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    return encode_sampled(tokenizer, prompt_messages + list(completion), token_ids, max_length,
                          first_trained=len(prompt_messages), logprobs=logprobs)


def _with_tail(ids: list[int], mask: list[int], tail: list[int], max_length: int,
               logprobs: list[float] | None) -> Encoded:
    """The prefix, then the sampled ids (all trained), truncated to `max_length`."""
    full, full_mask = ids + list(tail), mask + [1] * len(tail)
    extra: dict = {"truncated": len(full) > max_length, "sampled": True, "tail_start": len(ids)}
    if logprobs is not None and len(logprobs) == len(tail):
        kept_tail = max(0, min(len(tail), max_length - len(ids)))
        extra["logprobs"] = list(logprobs[:kept_tail])
    return Encoded(full[:max_length], full_mask[:max_length], extra)


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
