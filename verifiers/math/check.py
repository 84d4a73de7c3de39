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

import re
from typing import Any

import sympy

from verifiers.math.compare import answers_equal
from verifiers.math.extract import Extraction, extract_answers, find_boxed
from verifiers.math.numeric import DEFAULT_REL_TOL
from verifiers.math.parse import Parsed, parse_answer
from verifiers.math.textparse import ParseError

MAX_DETAIL_CHARS = 200
_ONLY_SEPARATORS = re.compile(r"(?:[\s,;$.(){}\[\]]|\\[()\[\]]|\\q?quad|\\text\{\s*and\s*\}|and|or)*")


def check(response: str, reference: str, rel_tol: float = DEFAULT_REL_TOL) -> dict[str, Any]:
    """Grade `response` against `reference`; see the module docstring for the result shape."""
    reference_text = reference_answer(reference)
    try:
        parsed_reference = parse_answer(reference_text)
    except (ParseError, TypeError, ValueError, AttributeError) as exc:
        return _result(False, f"unreadable reference: {exc}", error="bad_reference", reference=reference_text)
    extraction = extract_answers(response)
    extraction = _boxed_parts_of_a_list(extraction, parsed_reference)
    details: dict[str, Any] = {"extracted": [_short(a) for a in extraction.answers],
                               "source": extraction.source, "reference": _short(reference_text)}
    if not extraction.found:
        reason = "the final answer is negated" if extraction.source == "negated" else "no final answer found"
        return _result(False, reason, **details)
    for answer_text in extraction.answers:
        try:
            parsed = parse_answer(answer_text)
        except (ParseError, TypeError, ValueError, AttributeError) as exc:
            return _result(False, f"unreadable answer {_short(answer_text)!r}: {exc}", **details)
        try:
            equal = answers_equal(parsed_reference, parsed, rel_tol)
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # sympy refusing a comparison: the answer is not shown equal, so it fails
            return _result(False, f"cannot compare {_short(answer_text)!r}: {type(exc).__name__}", **details)
        if not equal:
            return _result(False, _wrong_reason(extraction.answers, answer_text), **details)
    return _result(True, f"equal ({extraction.source})", **details)


def reference_answer(reference: str) -> str:
    """A reference may be a whole solution: then its last boxed answer is the reference.

    A reference made only of several boxes (`\\boxed{1} and \\boxed{2}`) is the list of them.
    """
    boxed = find_boxed(reference)
    if not boxed:
        return reference.strip()
    outside = reference
    for box in boxed:
        outside = outside.replace(box, "", 1)
    if len(boxed) > 1 and _ONLY_SEPARATORS.fullmatch(re.sub(r"\\(?:boxed|fbox)", "", outside)):
        return ", ".join(b.strip() for b in boxed)
    return boxed[-1].strip()


def _boxed_parts_of_a_list(extraction: Extraction, reference: Parsed) -> Extraction:
    """Several boxes that together give a list reference (`\\boxed{1}, \\boxed{2}` vs `{1, 2}`)
    are one answer: the list. Against any other reference several different boxes stay a hedge."""
    count = len(extraction.answers)
    if extraction.source != "boxed" or count < 2 or not isinstance(reference.value, sympy.FiniteSet):
        return extraction
    if len(reference.value.args) != count:
        return extraction
    return Extraction((", ".join(extraction.answers),), "boxed_list")


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
