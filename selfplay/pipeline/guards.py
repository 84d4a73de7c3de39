"""Per-round guards: a round that makes the policy worse is rejected, recorded as such, and not built upon.

What it is for: after a round has trained and been evaluated, `check_round` compares it with the previous KEPT
round and with bounds from `[guards]`: held-out pass@1 falling by more than `max_pass_drop`, KL to the cold start
above `max_kl`, policy entropy below `min_entropy` or above `max_entropy`, (DPO) the chosen completions' log-probs
falling by more than `max_chosen_logp_drop` nats (likelihood displacement, which the DPO loss curve hides), and,
with `reject_on_audit_alarm`, the verifier audit's alarm (selfplay.pipeline.monitors).
It returns the reasons; the loop then restores the previous kept checkpoint into this round's slot, so the next round
samples from and trains the policy that was good, and writes `{"rejected": true, "reasons": [...], "hint": ...}` in the
record (`hint`: what to change, per kind of reason).
The decision is a pure function of stored numbers, so a resumed round reaches the same decision.
What it does not do: compute the numbers (the loop, the trainer and `selfplay.pipeline.monitors` do), or touch checkpoints.
"""

from __future__ import annotations

from typing import Any

EVAL_KEYS = ("eval_pass@1", "eval_pass@k", "eval_maj@k")
GUARDED = "guarded"   # the round-store phase of a rejected round whose checkpoint is being restored


def check_round(record: dict[str, Any], previous: dict[str, Any] | None, guards: Any) -> list[str]:
    """Reasons to reject `record` (empty: keep it). `previous` is the last kept round's record."""
    if not guards.enabled:
        return []
    reasons = []
    if previous is not None and guards.max_pass_drop is not None:
        before, after = previous.get("eval_pass@1"), record.get("eval_pass@1")
        if before is not None and after is not None and before - after > guards.max_pass_drop:
            reasons.append(f"held-out pass@1 fell {before:.3f} -> {after:.3f} "
                           f"(more than max_pass_drop = {guards.max_pass_drop})")
    monitors = record.get("monitors") or {}
    kl, entropy = monitors.get("kl_to_cold_start"), monitors.get("policy_entropy")
    if guards.max_kl is not None and kl is not None and kl > guards.max_kl:
        reasons.append(f"KL to the cold start {kl:.3f} nats/token > max_kl = {guards.max_kl}")
    if guards.min_entropy is not None and entropy is not None and entropy < guards.min_entropy:
        reasons.append(f"policy entropy {entropy:.3f} nats/token < min_entropy = {guards.min_entropy}")
    if guards.max_entropy is not None and entropy is not None and entropy > guards.max_entropy:
        reasons.append(f"policy entropy {entropy:.3f} nats/token > max_entropy = {guards.max_entropy}")
    delta = (record.get("train") or {}).get("chosen_logp_delta")
    if guards.max_chosen_logp_drop is not None and delta is not None and -delta > guards.max_chosen_logp_drop:
        reasons.append(f"DPO chosen log-probs fell {-delta:.2f} nats per completion "
                       f"(more than max_chosen_logp_drop = {guards.max_chosen_logp_drop})")
    audit = record.get("audit") or {}
    if getattr(guards, "reject_on_audit_alarm", False) and audit.get("alarm"):
        reasons.append(f"verifier audit: {audit['disagreement_rate']:.0%} of {audit['audited']} audited training rows "
                       "fail the independent check (reward hacking?)")
    return reasons


# The first words of each reason of `check_round` -> what to change. The hint is stored with the rejected round.
HINTS = [("held-out pass@1 fell", "train less per round ([train] settings max_steps or lr), keep more of the old data "
          "([train] replay_seed), or, with a small eval set whose pass@1 moves by noise, raise [eval] k / [tasks] "
          "n_eval or [guards] max_pass_drop"),
         ("KL to the cold start", "lower the lr or the steps per round (GRPO: raise settings.grpo kl_coef)"),
         ("policy entropy", "the policy is collapsing onto few answers (low) or diffusing (high): lower the lr, or "
          "sample with another [generate] temperature"),
         ("DPO chosen log-probs fell", "likelihood displacement: raise settings.dpo rpo_alpha or beta, or lower the "
          "lr"),
         ("verifier audit", "the verifier accepts answers an independent check rejects: inspect rounds/R/train.jsonl "
          "and tighten [generate] verifier")]


def hint(reasons: list[str]) -> str:
    """What to change for a rejected round, one clause per kind of reason (in the order of the reasons)."""
    found = [advice for reason in reasons for start, advice in HINTS if reason.startswith(start)]
    return "; ".join(dict.fromkeys(found)) or "inspect the round's record in rounds.json"


def last_kept(rounds: list[dict[str, Any]], before: int) -> dict[str, Any] | None:
    """The newest finished, not rejected round before `before` (round 0 is always kept)."""
    kept = [r for r in rounds if r["round"] < before and not r.get("rejected")]
    return max(kept, key=lambda r: r["round"]) if kept else None


def rejected_record(record: dict[str, Any], previous: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    """The record of a rejected round: its own eval numbers kept under "rejected_eval", the kept policy's in place."""
    out = dict(record)
    out["rejected"] = True
    out["reasons"] = reasons
    out["hint"] = hint(reasons)
    out["rejected_eval"] = {k: record.get(k) for k in EVAL_KEYS if k in record}
    out["kept_round"] = previous["round"]
    out.update({k: previous[k] for k in EVAL_KEYS if k in previous})
    return out
