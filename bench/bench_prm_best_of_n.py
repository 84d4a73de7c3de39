"""Best-of-N on the demo task family: a PRM trained on `selfplay prm-label` labels vs majority vote, ORM, random.

What it is for: the measurement behind `docs/judge-prm.md` ("Best-of-N on the demo family"). It
1. trains a tiny policy (tiny-llama, SFT on worked-style addition: "7+8=15 c1. 4+3+1=8 c0. \\boxed{85}")
   until it is right on some tasks and wrong on others (or reuses `--policy DIR`);
2. runs the prm-label job (`selfplay.jobs.prm_label`, the code behind `selfplay prm-label`) on a training
   split: K candidates per task, N rollouts per step prefix, steps cut at ". ", hard labels;
3. trains three scorers on those rows, all reading the chat the policy saw and its own ". " separator:
   a PRM (`trainer.prm.train_prm`, backbone initialised from the policy, full fine-tune), the same PRM
   with the confidence input (frozen policy backbone; the head also reads each step's lowest token
   log-probability; lr `--head-lr`), and an outcome model (ORM): the PRM's head trained with one
   "step" = the whole solution and its label = the candidate's own verdict;
4. samples 16 candidates per held-out task and reports the accuracy of picking one of N (4, 8, 16) by
   each PRM (min, product, last, mean), the ORM, majority vote over the boxed answers, a random pick,
   pass@N (an oracle), Math-Shepherd's combination (a vote over boxed answers weighted by the scores),
   and a baseline that is not a verifier model: the policy's own confidence (the lowest log-probability
   of any token it sampled in the candidate). For N < 16, each task's N candidates are `--subsets`
   random subsets of its 16 (averaged); random pick and majority-vote ties count their expectation.
What it does not do: compare against peers (there is no peer PRM on this family) or use a GPU. It has no
validation split: `--head-lr` (1e-2, not the full fine-tune's 1e-3) and the library's default aggregation
were chosen by looking at this table, on these held-out tasks. Run: `.venv/bin/python bench/bench_prm_best_of_n.py [--policy DIR]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SEPARATOR = ". "
METHODS = ("min", "product", "last", "mean")
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", help="reuse this policy checkpoint dir (else train one into --work/policy)")
    p.add_argument("--work", help="working directory (default: a temp dir)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sft-rows", type=int, default=1000)
    p.add_argument("--sft-steps", type=int, default=400)
    p.add_argument("--label-tasks", type=int, default=200)
    p.add_argument("--k", type=int, default=4, help="candidates per labelling task")
    p.add_argument("--rollouts", type=int, default=4, help="completions per step prefix")
    p.add_argument("--prm-steps", type=int, default=300)
    p.add_argument("--head-lr", type=float, default=1e-2,
                   help="learning rate of the PRM with the confidence input (its head alone learns: a linear model)")
    p.add_argument("--eval-tasks", type=int, default=200)
    p.add_argument("--subsets", type=int, default=8)
    return p.parse_args()


def train_policy(args, splits, out: Path) -> str:
    from trainer.config import TrainConfig
    from trainer.models import load_model, save_model
    from trainer.sft import train_sft

    model, tok = load_model("tiny-llama", seed=args.seed)
    rows = [{"messages": [{"role": "user", "content": t.prompt}, {"role": "assistant", "content": s}]}
            for t, s in splits.seed_examples]
    train_sft(model, tok, rows, TrainConfig(lr=1e-3, batch_size=64, max_steps=args.sft_steps, group_by_length=False,
                                            progress="off", seed=args.seed))
    return save_model(model, tok, str(out))


def write_tasks(tasks, path: Path) -> None:
    path.write_text("".join(t.model_dump_json() + "\n" for t in tasks))


def label(args, policy: str, tasks, work: Path) -> tuple[list[dict], dict]:
    from selfplay.config.prm_label import PrmLabelConfig
    from selfplay.jobs.prm_label import PrmLabelJob

    write_tasks(tasks, work / "label_tasks.jsonl")
    config = PrmLabelConfig.model_validate({
        "model": {"name": "bench-policy", "backend": "local", "path": policy},
        "prm_label": {"tasks": str(work / "label_tasks.jsonl"), "k": args.k, "rollouts": args.rollouts,
                      "separator": SEPARATOR, "max_tokens": 64, "temperature": 1.0, "seed": args.seed,
                      "concurrency": 64, "threads": 1}})
    summary = asyncio.run(PrmLabelJob(config, work / "labels").run())
    rows = [json.loads(line) for line in (work / "labels" / "prm.jsonl").read_text().splitlines()]
    return rows, summary


def as_chat(rows: list[dict]) -> list[dict]:
    """Rows whose prompt is the chat the policy saw, so the PRM reads exactly the policy's text."""
    return [{**r, "prompt": [{"role": "user", "content": r["prompt"]}]} for r in rows]


def orm_rows(rows: list[dict]) -> list[dict]:
    """The same candidates, one step (the whole solution) labelled by the outcome (the last step's label)."""
    return [{"prompt": r["prompt"], "completions": [SEPARATOR.join(r["completions"])], "labels": [r["labels"][-1]]}
            for r in rows]


def train_scorer(args, policy: str, rows: list[dict], out: Path, confidence: bool = False):
    """A PRM (or, on `orm_rows`, an ORM) from the policy; `confidence`: frozen backbone + the confidence input."""
    from trainer.config import TrainConfig
    from trainer.prm import load_prm_module, save_prm, train_prm
    from verifiers.prm.model import ModelPRM

    module, tok, _ = load_prm_module(policy, seed=args.seed, confidence=confidence)
    config = TrainConfig(lr=args.head_lr if confidence else 1e-3, batch_size=32, max_steps=args.prm_steps, group_by_length=False, progress="off",
                         seed=args.seed, max_length=256)
    metrics = train_prm(module, tok, as_chat(rows), config, separator=SEPARATOR)
    save_prm(module, tok, str(out), SEPARATOR, 256)
    return ModelPRM.load(str(out), device="cpu", batch_size=64), metrics


async def sample_eval(policy: str, tasks, n: int, seed: int) -> list[list[str]]:
    from agents.llm.local import LocalBackend
    from agents.llm.types import SamplingParams
    from trainer.models import load_model

    model, tok = load_model(policy)
    backend = LocalBackend(model, tok, name="bench-policy", seed=seed)
    try:
        results = await asyncio.gather(*(backend.chat(t.messages(), SamplingParams(
            n=n, temperature=1.0, max_tokens=64, seed=seed * 100003 + i)) for i, t in enumerate(tasks)))
    finally:
        await backend.aclose()
    return [[c.text for c in r.choices] for r in results]


def boxed(text: str) -> str | None:
    found = _BOXED.findall(text)
    return found[-1].strip() if found else None


def pick_accuracy(items: list[dict], n: int, subsets: int, seed: int) -> dict[str, float]:
    """Mean accuracy of each selection rule over tasks (and random subsets of size n)."""
    rng = random.Random(seed)
    totals: dict[str, float] = {}
    count = 0
    for item in items:
        size = len(item["correct"])
        draws = [list(range(size))] if n >= size else [rng.sample(range(size), n) for _ in range(subsets)]
        for idx in draws:
            for rule, value in select_all(item, idx).items():
                totals[rule] = totals.get(rule, 0.0) + value
            count += 1
    return {rule: value / count for rule, value in totals.items()}


def select_all(item: dict, idx: list[int]) -> dict[str, float]:
    correct = [item["correct"][i] for i in idx]
    out = {"pass@N (oracle)": float(any(correct)), "random pick": sum(correct) / len(correct),
           "majority vote": majority(item, idx)}
    for name, scores in item["scores"].items():
        best = max(idx, key=lambda i: scores[i])
        out[name] = float(item["correct"][best])
    for name in ("ORM", "PRM min", "PRM with confidence input, min"):
        out[f"vote weighted by {name}"] = weighted_vote(item, idx, item["scores"][name])
    return out


def weighted_vote(item: dict, idx: list[int], scores: list[float]) -> float:
    """Math-Shepherd's combination: each boxed answer gets the sum of its candidates' scores; the top one wins."""
    weight: dict[str, float] = {}
    members: dict[str, int] = {}
    for i in idx:
        answer = item["answers"][i]
        if answer is not None:
            weight[answer] = weight.get(answer, 0.0) + max(scores[i], 0.0)
            members[answer] = i
    if not weight:
        return sum(item["correct"][i] for i in idx) / len(idx)
    return float(item["correct"][members[max(weight, key=weight.get)]])


def majority(item: dict, idx: list[int]) -> float:
    """Majority over boxed answers (no answer abstains); a tie counts the expected accuracy of a fair coin."""
    votes: dict[str, list[int]] = {}
    for i in idx:
        if item["answers"][i] is not None:
            votes.setdefault(item["answers"][i], []).append(i)
    if not votes:
        return sum(item["correct"][i] for i in idx) / len(idx)
    top = max(len(v) for v in votes.values())
    tied = [v[0] for v in votes.values() if len(v) == top]
    return sum(item["correct"][i] for i in tied) / len(tied)


def policy_confidence(policy: str, tasks, samples) -> list[list[float]]:
    """Each candidate's lowest token log-probability under the policy that sampled it (a baseline, not a PRM)."""
    import torch

    from trainer.models import load_model

    model, tok = load_model(policy)
    model.eval()
    out = []
    for task, texts in zip(tasks, samples):
        prompt = tok(tok.apply_chat_template(task.messages(), tokenize=False, add_generation_prompt=True),
                     add_special_tokens=False)["input_ids"]
        scores = []
        for text in texts:
            ids = prompt + tok(text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1].float(), -1)
            own = logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])][len(prompt) - 1:]
            scores.append(own.min().item() if len(own) else float("-inf"))
        out.append(scores)
    return out


def score_eval(tasks, samples, prm, orm, prm_conf, confidence) -> list[dict]:
    from verifiers.math import verify
    from verifiers.prm.aggregate import aggregate
    from verifiers.prm.steps import split_steps

    items = []
    for task, texts, own in zip(tasks, samples, confidence):
        steps = [split_steps(t, SEPARATOR) or [t or " "] for t in texts]
        chat = task.messages()
        prm_scores = prm.score_many([(chat, s) for s in steps])
        conf_scores = prm_conf.score_many([(chat, s) for s in steps])
        orm_scores = orm.score_many([(chat, [SEPARATOR.join(s)]) for s in steps])
        scores = {f"PRM {m}": [aggregate(s, m) if s else -1.0 for s in prm_scores] for m in METHODS}
        scores.update({f"PRM with confidence input, {m}": [aggregate(s, m) if s else -1.0 for s in conf_scores]
                       for m in METHODS})
        scores["ORM"] = [s[0] if s else -1.0 for s in orm_scores]
        scores["policy confidence (min token log-prob)"] = own
        items.append({"correct": [bool(verify(t, task.answer).passed) for t in texts],
                      "answers": [boxed(t) for t in texts], "scores": scores})
    return items


def table(results: dict[int, dict[str, float]]) -> str:
    ns = sorted(results)
    rules = ["random pick", "majority vote", "ORM", *[f"PRM {m}" for m in METHODS],
             *[f"PRM with confidence input, {m}" for m in METHODS], "vote weighted by ORM",
             "vote weighted by PRM min", "vote weighted by PRM with confidence input, min",
             "policy confidence (min token log-prob)", "pass@N (oracle)"]
    lines = ["| selection | " + " | ".join(f"N = {n}" for n in ns) + " |", "|---|" + "---:|" * len(ns)]
    lines += [f"| {rule} | " + " | ".join(f"{results[n][rule]:.3f}" for n in ns) + " |" for rule in rules]
    return "\n".join(lines)


def main() -> None:
    import torch

    from selfplay.tasks.builtin import addition_splits

    torch.set_num_threads(1)
    args = parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-prm-"))
    work.mkdir(parents=True, exist_ok=True)
    splits = addition_splits(args.seed, n_seed=args.sft_rows, n_train=args.label_tasks, n_eval=args.eval_tasks,
                             style="worked")
    clock = {"start": time.perf_counter()}
    policy = args.policy or train_policy(args, splits, work / "policy")
    clock["policy"] = time.perf_counter()
    rows, summary = label(args, policy, splits.train_pool, work)
    clock["labels"] = time.perf_counter()
    prm, prm_metrics = train_scorer(args, policy, rows, work / "prm")
    orm, orm_metrics = train_scorer(args, policy, orm_rows(rows), work / "orm")
    prm_conf, conf_metrics = train_scorer(args, policy, rows, work / "prm-confidence", confidence=True)
    clock["scorers"] = time.perf_counter()
    samples = asyncio.run(sample_eval(policy, splits.eval_set, 16, args.seed + 1))
    confidence = policy_confidence(policy, splits.eval_set, samples)
    items = score_eval(splits.eval_set, samples, prm, orm, prm_conf, confidence)
    results = {n: pick_accuracy(items, n, args.subsets, args.seed) for n in (4, 8, 16)}
    clock["eval"] = time.perf_counter()
    steps = [float(x) for r in rows for x in r["labels"]]
    print(f"policy: {policy}; held-out pass@1 {sum(sum(i['correct']) for i in items) / (16 * len(items)):.3f}")
    print(f"labels: {summary['rows']} rows from {summary['candidates']} candidates, {len(steps)} steps, "
          f"{sum(steps) / max(1, len(steps)):.2f} positive; {summary['requests']} requests; "
          f"candidates right {sum(r['labels'][-1] for r in rows) / max(1, len(rows)):.2f}")
    print(f"train step_acc: PRM {prm_metrics.get('step_acc')}, ORM {orm_metrics.get('step_acc')}, "
          f"PRM with confidence input {conf_metrics.get('step_acc')}")
    print("times (s): " + ", ".join(f"{k} {clock[k] - prev:.0f}" for prev, k in
                                    zip([clock["start"], clock["policy"], clock["labels"], clock["scorers"]],
                                        ["policy", "labels", "scorers", "eval"])))
    print(f"\n{len(items)} held-out tasks, {args.subsets} random subsets per task for N < 16, seed {args.seed}\n")
    print(table(results))


if __name__ == "__main__":
    main()
