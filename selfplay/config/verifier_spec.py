"""The grammar of a `verifier = "..."` config value: one parser shared by the configs and the verification stage.

What it is for: `parse_verifier_spec(spec)` -> a `VerifierSpec`, or a ValueError naming the spec and the accepted
forms. A spec is a built-in check (`math`, `code`, `auto`: the task's `kind` picks math or code), a model check
built per job from its own config section (`judge`, `prm`), or a composition of built-in checks:
`all_of:math,code`, `any_of:math,code`, `weighted:math=0.7,code=0.3@0.5` (pass when the weighted score >= 0.5;
no @: 1.0) or `threshold:math@0.8`. The configs (`selfplay.config.generate`, `selfplay.config.run`) validate
with it at load time; `selfplay.pipeline.verify.parse_verifier` builds the checks from what it returns.
What it does not do: check anything or import a verifier (pure parsing); a new built-in check is one name in
`CHECK_NAMES` here and its function in `selfplay.pipeline.verify.CHECKS`.
"""

from __future__ import annotations

from dataclasses import dataclass

CHECK_NAMES = ("math", "code", "auto")     # the keys of selfplay.pipeline.verify.CHECKS, in its order
MODEL_CHECKS = ("judge", "prm")            # built per job from their config sections (judge_check, prm_check)
COMPOSITES = ("all_of", "any_of", "weighted", "threshold")


@dataclass(frozen=True)
class VerifierSpec:
    """A parsed spec. `kind`: "check" (one built-in check, `names[0]`), "model" (judge or prm, `names[0]`), or a
    composite of COMPOSITES over `names` (in spec order, repeats kept) with one weight per name (1.0 unless
    `name=w`) and the number after @ (`level`: weighted's pass threshold, threshold's minimum score; else None)."""

    kind: str
    names: tuple[str, ...]
    weights: tuple[float, ...] = ()
    level: float | None = None

    @property
    def composite(self) -> bool:
        return self.kind in COMPOSITES


def parse_verifier_spec(spec: str) -> VerifierSpec:
    """The parsed `spec`; ValueError (naming the spec and the accepted forms) when it is malformed."""
    if spec in CHECK_NAMES:
        return VerifierSpec("check", (spec,))
    if spec in MODEL_CHECKS:
        return VerifierSpec("model", (spec,))
    kind, sep, body = spec.partition(":")
    if not sep or kind not in COMPOSITES:
        raise ValueError(f"verifier {spec!r}: use one of {', '.join([*CHECK_NAMES, *MODEL_CHECKS])}, or compose "
                         "them: all_of:math,code | any_of:math,code | weighted:math=0.7,code=0.3@0.5 | "
                         "threshold:math@0.8")
    body, _, cut = body.partition("@")
    parts = [p.strip() for p in body.split(",") if p.strip()]
    names = [p.partition("=")[0].strip() for p in parts]
    unknown = [n for n in names if n not in CHECK_NAMES]
    if not parts or unknown:
        raise ValueError(f"verifier {spec!r}: parts must be among {', '.join(CHECK_NAMES)} "
                         f"(got {', '.join(unknown) or 'none'})")
    try:
        level = float(cut) if cut else None
        weights = [float(p.partition("=")[2] or 1.0) for p in parts]
    except ValueError as exc:
        raise ValueError(f"verifier {spec!r}: weights and the @ threshold must be numbers") from exc
    if kind == "weighted":
        _check_weights(dict(zip(names, weights)))
    if kind == "threshold" and (len(names) != 1 or level is None):
        raise ValueError(f"verifier {spec!r}: threshold takes one part and a score, e.g. threshold:math@0.8")
    return VerifierSpec(kind, tuple(names), tuple(weights), level)


def _check_weights(weights: dict[str, float]) -> None:
    """`verifiers.compose.Weighted`'s own rule and message, here so that a config load reports it (a repeated name
    counts with its last weight, as the composite keeps it)."""
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
