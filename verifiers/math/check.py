"""One math check, start to finish: extract, parse, compare. Runs inside the worker process.

What it is for: the function the time-limited worker calls. It returns a plain dict (cheap to
pickle) that `verifiers.math.verifier` turns into a `Verdict`:
  {"passed": bool, "reason": str, "error": str | None, "details": {...}}.
A reference that cannot be parsed is a verifier error (`error="bad_reference"`), never a wrong
answer; an answer that cannot be found or parsed is a wrong answer. Several different boxed answers
pass only if every one of them equals the reference (otherwise: "hedge").

What it does not do: enforce time limits (the worker does), or run in the caller's process in
production (tests may call it directly on inputs known to be fast).
"""

from __future__ import annotations

from typing import Any

from verifiers.math.compare import answers_equal
from verifiers.math.extract import extract_answers, find_boxed
from verifiers.math.numeric import DEFAULT_REL_TOL
from verifiers.math.parse import parse_answer
from verifiers.math.textparse import ParseError

MAX_DETAIL_CHARS = 200


def check(response: str, reference: str, rel_tol: float = DEFAULT_REL_TOL) -> dict[str, Any]:
    """Grade `response` against `reference`; see the module docstring for the result shape."""
    reference_text = reference_answer(reference)
    try:
        parsed_reference = parse_answer(reference_text)
    except ParseError as exc:
        return _result(False, f"unreadable reference: {exc}", error="bad_reference", reference=reference_text)
    extraction = extract_answers(response)
    details: dict[str, Any] = {"extracted": [_short(a) for a in extraction.answers],
                               "source": extraction.source, "reference": _short(reference_text)}
    if not extraction.found:
        return _result(False, "no final answer found", **details)
    for answer_text in extraction.answers:
        try:
            parsed = parse_answer(answer_text)
        except ParseError as exc:
            return _result(False, f"unreadable answer {_short(answer_text)!r}: {exc}", **details)
        if not answers_equal(parsed_reference, parsed, rel_tol):
            return _result(False, _wrong_reason(extraction.answers, answer_text), **details)
    return _result(True, f"equal ({extraction.source})", **details)


def reference_answer(reference: str) -> str:
    """A reference may be a whole solution: then its last boxed answer is the reference."""
    boxed = find_boxed(reference)
    return boxed[-1].strip() if boxed else reference.strip()


def warm_up() -> None:
    """Exercise the parsers once so the first real check does not pay for ANTLR's start-up."""
    check("$\\boxed{\\frac{1}{2}}$", "0.5")
    check("x = 2 or x = 3", "\\{2, 3\\}")
    check("(1, 2]", "[1, 2)")


def _wrong_reason(answers: tuple[str, ...], failing: str) -> str:
    if len(answers) > 1:
        return f"hedge: {len(answers)} different boxed answers, {_short(failing)!r} is not the reference"
    return f"not equal to the reference: {_short(failing)!r}"


def _short(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else text[:MAX_DETAIL_CHARS] + "..."


def _result(passed: bool, reason: str, error: str | None = None, **details: Any) -> dict[str, Any]:
    return {"passed": passed, "reason": reason, "error": error, "details": details}
