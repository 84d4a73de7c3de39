"""Built-in task families with verifiable answers: multi-digit addition (the demo's family).

What it is for: tasks that need no download and whose answers `verifiers.math` checks, plus
solutions for a cold-start SFT seed set, in one of two styles:
- `short` (the demo's): prompt "47+38", solution "85" (the verifier reads the last number). Twelve
  tokens per example with the tiny models' template, which is what makes the demo fit on a CPU;
- `worked`: prompt "What is 47 + 38?", a chain of thought right to left, digit by digit with
  carries, then a boxed answer: "7+8=15 c1. 4+3+1=8 c0. \\boxed{85}".
Splits are disjoint by operand pair, deterministic for a seed.
What it does not do: teach anything (the trainer does) or check answers (the verifier does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from selfplay.tasks.task import Task


def worked_solution(a: int, b: int) -> str:
    """Digit-by-digit addition, least significant digit first, with the carry written out."""
    xs, ys = str(a)[::-1], str(b)[::-1]
    carry, parts = 0, []
    for i in range(max(len(xs), len(ys))):
        x = int(xs[i]) if i < len(xs) else 0
        y = int(ys[i]) if i < len(ys) else 0
        total = x + y + carry
        terms = f"{x}+{y}" + (f"+{carry}" if carry else "")
        carry = total // 10
        parts.append(f"{terms}={total} c{carry}.")
    return " ".join(parts) + f" \\boxed{{{a + b}}}"


STYLES = ("short", "worked")


def addition_prompt(a: int, b: int, style: str = "worked") -> str:
    return f"{a}+{b}" if style == "short" else f"What is {a} + {b}?"


def addition_solution(a: int, b: int, style: str = "worked") -> str:
    return str(a + b) if style == "short" else worked_solution(a, b)


def addition_task(a: int, b: int, prefix: str = "add", style: str = "worked") -> Task:
    return Task(id=f"{prefix}-{a}-{b}", prompt=addition_prompt(a, b, style), kind="math", answer=str(a + b),
                metadata={"a": a, "b": b})


@dataclass
class AdditionSplits:
    seed_examples: list[tuple[Task, str]]   # (task, worked solution) for the cold-start SFT
    train_pool: list[Task]                  # tasks the loop samples, verifies and learns from
    eval_set: list[Task]                    # held out: never trained on


def pair_count(digits: int) -> int:
    """How many distinct (a, b) pairs of `digits`-digit numbers exist: what the splits can draw at most."""
    return (9 * 10 ** (digits - 1)) ** 2


def addition_splits(seed: int, *, digits: int = 2, n_seed: int = 200, n_train: int = 1000,
                    n_eval: int = 200, style: str = "worked") -> AdditionSplits:
    """Disjoint operand pairs of `digits`-digit numbers for seed, train and eval."""
    low, high = 10 ** (digits - 1), 10 ** digits - 1
    rng = random.Random(seed)
    needed = n_seed + n_train + n_eval
    universe = pair_count(digits)
    if needed > universe:
        raise ValueError(f"asked for {needed} distinct {digits}-digit pairs, only {universe} exist; raise digits or "
                         "ask for fewer tasks")
    pairs: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    while len(pairs) < needed:
        pair = (rng.randint(low, high), rng.randint(low, high))
        if pair not in seen:
            seen.add(pair)
            pairs.append(pair)
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {STYLES}")
    seeds = [(addition_task(a, b, "seed", style), addition_solution(a, b, style)) for a, b in pairs[:n_seed]]
    train = [addition_task(a, b, "train", style) for a, b in pairs[n_seed:n_seed + n_train]]
    evals = [addition_task(a, b, "eval", style) for a, b in pairs[n_seed + n_train:]]
    return AdditionSplits(seeds, train, evals)
