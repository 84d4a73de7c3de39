"""Bench: SFT tokens/s and peak memory of `trainer.sft` vs TRL's `SFTTrainer`, same tiny model and data, same run;
plus a check that `trainer.losses.dpo_loss` equals TRL's DPO loss on the same batch (to 1e-5).

What it is for: an honest ratio against the reference implementation (goal: ours / TRL >= 1.0 in tokens/s).
Each trainer runs in its own subprocess (so peak RSS is its own), on the same `tiny-llama` init, the same chat rows
(2-digit additions with worked answers), batch size, learning rate, fp32, on this machine's CPU (or GPU if present).
Tokens/s counts real (non-pad) tokens; ours is timed end to end including tokenization, TRL's `train()` only
(its dataset preprocessing happens before). "ours" uses our defaults (length-grouped batches: less padding);
"ours-plain" turns that off so both trainers see plainly shuffled batches. TRL trains on all tokens (our template
has no {% generation %} markers for its assistant_only_loss); ours on assistant tokens only: same compute.
What it does not do: run in the test suite (TRL is a bench-only dependency: `pip install 'selfplay[bench]'`).
Usage: python bench/bench_trainer_sft.py [--rows 1000] [--epochs 1] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def addition_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        answer = f"{a} + {b}: ones {a % 10}+{b % 10}={a % 10 + b % 10}, tens {a // 10}+{b // 10}. Answer: {a + b}"
        rows.append({"messages": [{"role": "user", "content": f"What is {a} + {b}?"},
                                  {"role": "assistant", "content": answer}]})
    return rows


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024


def gpu_peak_mb() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None


def worker_ours(args) -> dict:
    import torch

    from trainer.config import TrainConfig
    from trainer.models import load_model
    from trainer.sft import train_sft

    import accelerate  # noqa: F401  (imported before the baseline, as TRL's import does for the TRL worker)

    import trainer.loop  # noqa: F401

    torch.set_num_threads(args.threads)
    rows = addition_rows(args.rows)
    model, tokenizer = load_model("tiny-llama")
    rss_before = current_rss_mb()
    config = TrainConfig(lr=1e-3, epochs=args.epochs, batch_size=args.batch_size, max_length=256,
                         group_by_length=args.worker == "ours", log_every=10**9, progress="off")
    start = time.perf_counter()
    metrics = train_sft(model, tokenizer, rows, config)
    elapsed = time.perf_counter() - start
    return {"tokens": metrics["tokens"], "seconds": elapsed, "final_loss": metrics["final_loss"],
            "peak_rss_mb": peak_rss_mb(), "rss_before_mb": rss_before, "gpu_peak_mb": gpu_peak_mb()}


def worker_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from trainer.models import load_model

    torch.set_num_threads(args.threads)
    rows = addition_rows(args.rows)
    model, tokenizer = load_model("tiny-llama")
    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(output_dir=out, per_device_train_batch_size=args.batch_size, num_train_epochs=args.epochs,
                           learning_rate=1e-3, lr_scheduler_type="cosine", max_length=256, save_strategy="no",
                           report_to=[], logging_steps=10**9, dataloader_num_workers=0, disable_tqdm=True,
                           use_cpu=not torch.cuda.is_available(), bf16=False, fp16=False, seed=0)
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer)
        tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"]) * args.epochs
        rss_before = current_rss_mb()
        start = time.perf_counter()
        result = trainer.train()
        elapsed = time.perf_counter() - start
    return {"tokens": tokens, "seconds": elapsed, "final_loss": result.training_loss, "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": rss_before, "gpu_peak_mb": gpu_peak_mb()}


def dpo_loss_vs_trl() -> tuple[float, float]:
    """|ours - TRL| of the DPO loss on one batch of TRL's own DPOTrainer (same inputs and models), and TRL's loss."""
    import torch
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from trainer.losses import dpo_loss, token_logps
    from trainer.models import load_model

    model, tokenizer = load_model("micro-llama")
    ref = load_model("micro-llama")[0]
    with torch.no_grad():  # make policy and reference differ so the loss is not just log 2
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}],
             "chosen": [{"role": "assistant", "content": f"yes {i}"}],
             "rejected": [{"role": "assistant", "content": f"no, {i * 7}"}]} for i in range(8)]
    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(output_dir=out, per_device_train_batch_size=8, beta=0.1, report_to=[], use_cpu=True,
                         precompute_ref_log_probs=False)
        trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tokenizer)
        batch = next(iter(trainer.get_train_dataloader()))
        with torch.no_grad():
            theirs = float(trainer._compute_loss(trainer.model, batch, return_outputs=False))
            labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
            inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
            logps = token_logps(model(**inputs).logits, labels).sum(1)
            ref_logps = token_logps(ref(**inputs).logits, labels).sum(1)
    n = logps.shape[0] // 2  # TRL's batch is [chosen..., rejected...]
    ours = float(dpo_loss(logps[:n], logps[n:], ref_logps[:n], ref_logps[n:], beta=0.1))
    return abs(ours - theirs), theirs


def run_worker(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--rows", str(args.rows), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT})
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per trainer (1: steady on busy boxes)")
    parser.add_argument("--repeats", type=int, default=2, help="alternate ours/TRL this many times; best of each")
    parser.add_argument("--worker", choices=["ours", "ours-plain", "trl"])
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker_trl(args) if args.worker == "trl" else worker_ours(args)))
        return 0
    try:
        import trl  # noqa: F401
    except ImportError:
        print("TRL is not installed: pip install 'selfplay[bench]'", file=sys.stderr)
        return 1
    results = {"ours": [], "ours-plain": [], "trl": []}
    for _ in range(args.repeats):  # alternate so a noisy neighbour hurts all alike
        for kind in results:
            results[kind].append(run_worker(kind, args))
    best = {k: max(v, key=lambda r: r["tokens"] / r["seconds"]) for k, v in results.items()}
    print(f"SFT, tiny-llama, {args.rows} rows x {args.epochs} epoch(s), batch {args.batch_size}, "
          f"{args.threads} threads, best of {args.repeats}")
    print(f"{'trainer':<11}{'tokens/s':>10}{'seconds':>9}{'final loss':>12}{'RSS before train MB':>21}"
          f"{'peak RSS MB':>13}")
    for kind, r in best.items():
        print(f"{kind:<11}{r['tokens'] / r['seconds']:>10,.0f}{r['seconds']:>9.2f}{r['final_loss']:>12.3f}"
              f"{r['rss_before_mb']:>21.0f}{r['peak_rss_mb']:>13.0f}")
    if best["ours"]["gpu_peak_mb"] is not None:
        print("GPU peak allocated MB: " + ", ".join(f"{k} {r['gpu_peak_mb']:.0f}" for k, r in best.items()))
    rate = {k: r["tokens"] / r["seconds"] for k, r in best.items()}
    print(f"tokens/s ratio ours/TRL: {rate['ours'] / rate['trl']:.2f} with our defaults (length-grouped batches), "
          f"{rate['ours-plain'] / rate['trl']:.2f} with the same plain shuffled batching as TRL  (goal >= 1.0)")
    diff, value = dpo_loss_vs_trl()
    print(f"dpo_loss vs TRL DPOTrainer on the same batch: |diff| = {diff:.2e} (TRL loss {value:.6f}; goal <= 1e-5)")
    return 0 if diff <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
