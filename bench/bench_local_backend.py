"""Benchmark: K=16 samples per prompt from the local backend vs plain `model.generate(num_return_sequences=16)`.

What it measures: the same tiny model, in the same run, the same work (prompts of ~300 tokens, like few-shot
prompts; exactly 32 sampled tokens per sample, eos ignored on both sides so no method stops early):
  - peer `generate`: HF `model.generate(ids, do_sample=True, num_return_sequences=16)` one prompt at a time
    (it copies the prompt 16 times before prefill, so it prefills 16 x 300 tokens per prompt);
  - peer `generate-batched`: the same with all prompts left-padded into one call (a stronger peer);
  - `local`: `LocalBackend.chat(n=16)` called concurrently for all prompts (its real path: micro-batcher, one
    prefill per prompt, KV cache expanded to 16 rows, all rows decoded together);
  - `local-1-prompt`: the local backend one prompt at a time (shared prefill alone, no cross-prompt batching).
It prints seconds (median of --repeats after one warm-up) and the ratio peer / local; the goal is >= 1.5x over
`generate`. What it does not measure: quality (weights are random), or GPU (pass --device cuda where present).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.llm.local import LocalBackend  # noqa: E402
from agents.llm.types import SamplingParams  # noqa: E402
from trainer.tiny import build_tiny_model, build_tiny_tokenizer  # noqa: E402

FEW_SHOT = ("Q: Tom has {a} apples and buys {b} more. How many apples does he have?\n"
            "A: He has {a} + {b} = {c} apples. The answer is {c}.\n")


def make_prompts(count: int, prompt_tokens: int, tokenizer) -> list[list[dict]]:
    prompts = []
    for p in range(count):
        text, i = "", 0
        while True:
            shot = FEW_SHOT.format(a=p + i, b=i + 2, c=p + 2 * i + 2)
            messages = [{"role": "user", "content": text + shot}]
            if len(chat_ids(tokenizer, messages)) > prompt_tokens:
                break
            text, i = text + shot, i + 1
        missing = prompt_tokens - len(chat_ids(tokenizer, [{"role": "user", "content": text}]))
        prompts.append([{"role": "user", "content": text + shot[:max(0, missing)]}])  # 1 token per ASCII char
    return prompts


def chat_ids(tokenizer, messages) -> list[int]:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def run_generate(model, tokenizer, prompts, k: int, new_tokens: int, device: str) -> int:
    produced = 0
    for messages in prompts:
        ids = torch.tensor([chat_ids(tokenizer, messages)], device=device)
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, num_return_sequences=k,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, temperature=1.0, top_p=1.0,
                             pad_token_id=tokenizer.pad_token_id)
        produced += (out.shape[1] - ids.shape[1]) * out.shape[0]
    return produced


def run_generate_batched(model, tokenizer, prompts, k: int, new_tokens: int, device: str) -> int:
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts]
    batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt").to(device)
    out = model.generate(**batch, do_sample=True, num_return_sequences=k, max_new_tokens=new_tokens,
                         min_new_tokens=new_tokens, temperature=1.0, top_p=1.0, pad_token_id=tokenizer.pad_token_id)
    return (out.shape[1] - batch["input_ids"].shape[1]) * out.shape[0]


def run_local(backend: LocalBackend, prompts, k: int, new_tokens: int, concurrent: bool) -> int:
    params = SamplingParams(n=k, max_tokens=new_tokens, temperature=1.0, top_p=1.0)

    async def go():
        if concurrent:
            return await asyncio.gather(*[backend.chat(m, params) for m in prompts])
        return [await backend.chat(m, params) for m in prompts]

    return sum(r.usage.completion_tokens for r in asyncio.run(go()))


def timed(fn, repeats: int) -> tuple[float, int]:
    fn()  # warm-up
    times, produced = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        produced = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), produced


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-llama", help="built-in tiny config (default tiny-llama)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--prompt-tokens", type=int, default=300)
    parser.add_argument("--completion-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, for stable timings)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(args.model, tokenizer, seed=0).to(args.device).eval()
    prompts = make_prompts(args.prompts, args.prompt_tokens, tokenizer)
    mean_prompt = statistics.mean(len(chat_ids(tokenizer, m)) for m in prompts)
    backend = LocalBackend(model, tokenizer, name=args.model, eos_token_ids=[], max_batch_rows=args.prompts * args.k)
    expected = args.prompts * args.k * args.completion_tokens
    k, new = args.k, args.completion_tokens

    with torch.inference_mode():
        runs = {
            "generate": timed(lambda: run_generate(model, tokenizer, prompts, k, new, args.device), args.repeats),
            "generate-batched": timed(lambda: run_generate_batched(model, tokenizer, prompts, k, new, args.device),
                                      args.repeats),
        }
    runs["local"] = timed(lambda: run_local(backend, prompts, k, new, concurrent=True), args.repeats)
    runs["local-1-prompt"] = timed(lambda: run_local(backend, prompts, k, new, concurrent=False), args.repeats)

    print(f"model {args.model} on {args.device} ({args.threads} thread(s)); {args.prompts} prompts of "
          f"~{mean_prompt:.0f} tokens, K={k}, {new} tokens per sample ({expected} sampled tokens per method)")
    for name, (seconds, produced) in runs.items():
        assert produced == expected, f"{name} produced {produced} tokens, expected {expected}"
        print(f"  {name:<17} {seconds:7.3f} s   {produced / seconds:9.0f} sampled tokens/s")
    base = runs["local"][0]
    print(f"ratio generate / local          = {runs['generate'][0] / base:.2f}x  (goal >= 1.5x)")
    print(f"ratio generate-batched / local  = {runs['generate-batched'][0] / base:.2f}x")
    print(f"ratio generate / local-1-prompt = {runs['generate'][0] / runs['local-1-prompt'][0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
