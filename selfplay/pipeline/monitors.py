"""Per-round monitors for the two ways self-training fails: collapse on its own outputs, and reward hacking.

What it is for: numbers the loop puts in every round record (and the report shows), computed from what the round
already has in memory:
- diversity of what the policy writes on the held-out prompts: distinct final answers per task (mean over tasks of
  distinct answers / samples), distinct n-grams (unique / total word n-grams over all samples), mean length;
- policy entropy and KL to the cold start on the eval samples, per completion token: the samples come from the
  policy, so -mean log pi(token) estimates the entropy, and the k3 estimator mean(exp(d) - 1 - d), d = log pi_0 -
  log pi, estimates KL(pi || pi_0) without going negative (unbiased at temperature 1, the eval default);
- a verifier audit: a seeded, configurable fraction of the rows the loop is about to train on, re-checked by an
  independent verifier (default: the task's reference answer must be the response's LAST number, strict); the
  disagreement rate is reported and an alarm raised above a threshold. A verifier that accepts "the right number
  anywhere" is caught when the policy learns to list many numbers.
What it does not do: decide whether a round is kept (see `selfplay.pipeline.guards`), or run the loop's verifier again.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any, Callable, Sequence

from selfplay.pipeline.llm import load_policy_model
from selfplay.core.candidate import Candidate

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def distinct_answers(items: Sequence[Candidate]) -> float:
    """Mean over tasks of (distinct extracted answers, None counted as one answer) / samples of the task."""
    groups: dict[str, list[Candidate]] = {}
    for item in items:
        groups.setdefault(item.task_id, []).append(item)
    if not groups:
        return 0.0
    return sum(len({c.answer for c in g}) / len(g) for g in groups.values()) / len(groups)


def distinct_ngrams(texts: Sequence[str], n: int = 2) -> float | None:
    """Unique word n-grams / all word n-grams over `texts` (distinct-n); None when there are none (short answers)."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        words = text.split()
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else None


def text_monitors(items: Sequence[Candidate], records: Sequence[Candidate], n: int = 2) -> dict[str, float]:
    """Diversity and length of the eval samples (`items`: the verified ones; `records`: all, for the token counts)."""
    lengths = [r.usage.completion_tokens for r in records]
    grams = distinct_ngrams([c.text for c in items], n)
    return {"distinct_answers": distinct_answers(items), **({f"distinct_{n}grams": grams} if grams is not None else {}),
            "mean_length": sum(lengths) / len(lengths) if lengths else 0.0}


def entropy_and_kl(policy_logps: Sequence[Sequence[float]], ref_logps: Sequence[Sequence[float]] | None) -> dict:
    """Per-token entropy estimate (-mean log pi) and k3 KL(pi || ref) estimate on pi's own samples."""
    tokens = sum(len(s) for s in policy_logps)
    if not tokens:
        return {}
    out = {"policy_entropy": -sum(sum(s) for s in policy_logps) / tokens}
    if ref_logps is not None:
        out["kl_to_cold_start"] = sum(math.expm1(r - p) - (r - p) for ps, rs in zip(policy_logps, ref_logps)
                                      for p, r in zip(ps, rs)) / tokens
    return out


def sample_logps(model: Any, tokenizer: Any, items: Sequence[Candidate], limit: int, seed: int,
                 max_length: int = 1024) -> tuple[list[Candidate], list[list[float]]]:
    """Completion-token log-probs of up to `limit` eval samples (seeded choice) under `model`."""
    from trainer.encode import encode_prompt_completion
    from trainer.logps import frozen_token_logps
    from trainer.sft import _pad_id

    chosen = list(items) if len(items) <= limit else random.Random(seed).sample(list(items), limit)
    chosen = [c for c in chosen if c.completion]
    seqs = [encode_prompt_completion(tokenizer, list(c.prompt), list(c.completion), max_length) for c in chosen]
    logps = frozen_token_logps(model, seqs, _pad_id(tokenizer), 16)
    masks = [s.mask[1:] for s in seqs]
    return chosen, [[float(v) for v, m in zip(lp.tolist(), mask) if m] for lp, mask in zip(logps, masks)]


def last_number_matches(item: Candidate, reference: str | None) -> bool | None:
    """The strict audit verifier: the response's last number equals the reference (None: cannot audit)."""
    ref = (reference or "").strip()
    if not _NUMBER.fullmatch(ref):
        return None
    numbers = _NUMBER.findall(item.text)
    return bool(numbers) and math.isclose(float(numbers[-1]), float(ref), rel_tol=0, abs_tol=1e-9)


def audit(accepted: Sequence[Candidate], references: dict[str, str | None], fraction: float, seed: int,
          threshold: float, checker: Callable[[Candidate, str | None], bool | None] = last_number_matches) -> dict:
    """Re-check a `fraction` of the accepted (to-be-trained) candidates with `checker`; alarm above `threshold`."""
    if fraction <= 0 or not accepted:
        return {"audited": 0, "disagreements": 0, "disagreement_rate": 0.0, "alarm": False}
    count = max(1, round(fraction * len(accepted)))
    picked = random.Random(seed).sample(list(accepted), min(count, len(accepted)))
    verdicts = [checker(c, references.get(c.task_id)) for c in picked]
    checked = [v for v in verdicts if v is not None]
    disagreements = sum(1 for v in checked if not v)
    rate = disagreements / len(checked) if checked else 0.0
    return {"audited": len(checked), "disagreements": disagreements, "disagreement_rate": rate,
            "alarm": bool(checked) and rate > threshold,
            "examples": [c.text[:200] for c, v in zip(picked, verdicts) if v is False][:3]}


_COLD: dict[str, Any] = {}


def _cold_start_model(path: str) -> Any:
    """The round-0 checkpoint, loaded once per process (the KL reference)."""
    if path not in _COLD:
        _COLD.clear()
        _COLD[path] = load_policy_model(path)[0].eval()
    return _COLD[path]


def round_monitors(policy: Any, items: Sequence[Candidate], records: Sequence[Candidate], config: Any,
                   seed: int) -> dict[str, Any]:
    """Every monitor of one round's eval samples; entropy / KL need the policy's model (round 0 is the reference)."""
    out: dict[str, Any] = dict(text_monitors(items, records))
    if config.logp_samples and items and policy.model is not None:
        chosen, logps = sample_logps(policy.model, policy.tokenizer, items, config.logp_samples, seed)
        ref = logps
        if policy.round != 0 and policy.has_checkpoint(0):
            ref = sample_logps(_cold_start_model(str(policy.checkpoint(0))), policy.tokenizer, chosen,
                               len(chosen), seed)[1]
        out.update(entropy_and_kl(logps, ref))
    return out


REPORT_COLUMNS = [("distinct_answers", "distinct answers/task"), ("distinct_2grams", "distinct 2-grams"),
                  ("mean_length", "mean length"), ("policy_entropy", "entropy"), ("kl_to_cold_start", "KL to round 0")]


def report_lines(rounds: Sequence[dict[str, Any]]) -> list[str]:
    """The report's "Monitors and guards" section: one row per round (nothing when no round has monitors)."""
    if not any(r.get("monitors") for r in rounds):
        return []
    head = ["round", *(label for _, label in REPORT_COLUMNS), "audit disagreement", "kept"]
    lines = ["## Monitors and guards", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rounds:
        mon, aud = r.get("monitors") or {}, r.get("audit") or {}
        cells = [str(r["round"]), *(f"{mon[k]:.3f}" if k in mon else "-" for k, _ in REPORT_COLUMNS),
                 (f"{aud['disagreement_rate']:.2f} of {aud['audited']}" + (" ALARM" if aud.get("alarm") else ""))
                 if aud.get("audited") else "-",
                 "rejected: " + "; ".join(r.get("reasons", [])) if r.get("rejected") else "yes"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]
