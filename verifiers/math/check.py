"""One math check, start to finish: extract, parse, compare. Runs inside the worker process.

What it is for: the function the time-limited worker calls. It returns a plain dict (cheap to
pickle) that `verifiers.math.verifier` turns into a `Verdict`:
  {"passed": bool, "reason": str, "error": str | None, "details": {...}}.
A reference is read as an answer, else as a solution (its stated final answer) or a chain
`1 = \\zzz = 0` (its last side); one that still cannot be parsed is a verifier error
(`error="bad_reference"`), never a wrong answer. A reference that names its values (`AB=4, CD=5`)
also accepts the bare values, unless the answer itself has an equation. An answer that cannot
be found or parsed is a wrong answer. Several different boxed answers
pass only if every one of them equals the reference (otherwise: "hedge").

What it does not do: enforce time limits (the worker does), or run in the caller's process in
production (tests may call it directly on inputs known to be fast).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import sympy
from sympy.core.relational import Equality

from verifiers.math.compare import answers_equal, named_values
from verifiers.math.conclusion import STATED_SOURCES, is_truncated
from verifiers.math.equation import stated_value
from verifiers.math.extract import Extraction, committed, extract_answers, find_boxed
from verifiers.math.numeric import DEFAULT_REL_TOL
from verifiers.math.parse import Parsed, parse_answer
from verifiers.math.textparse import AnswerList, ParseError

MAX_DETAIL_CHARS = 200
_NO_ANSWER_REASONS = {
    "negated": "the final answer is negated",
    "hedged": "hedge: the final answer's sentence states more than one answer",
    "cut_off": "no committed answer: the response is cut off mid-sentence and states no final answer",
    "considered": "no committed answer: the last value is only considered (a hedged sentence), not concluded",
    "retracted": "no committed answer: the response changes its mind after its last value",
}
_NOT_ONE_CHAIN = re.compile(r"[,;]|\\text|\\quad|\b(?:and|or)\b")  # "W = 1 and W = -1" is two answers
_LAST_SIDE = re.compile(r"(?<![<>!=\\])=(?!=)([^=]*)$")
_ONLY_SEPARATORS = re.compile(r"(?:[\s,;$.(){}\[\]]|\\[()\[\]]|\\q?quad|\\text\{\s*and\s*\}|and|or)*")


def check(response: str, reference: str, rel_tol: float = DEFAULT_REL_TOL,
          finish_reason: str | None = None) -> dict[str, Any]:
    """Grade `response` against `reference`; see the module docstring for the result shape.

    `finish_reason` is the completion's (None: unknown). A truncated completion ("length") passes only
    with an answer it had committed to before the cut (see `conclusion`)."""
    reference_text = reference_answer(reference)
    try:
        reference_text, parsed_reference = parse_reference(reference_text)
    except (ParseError, TypeError, ValueError, AttributeError) as exc:
        return _result(False, f"unreadable reference: {exc}", error="bad_reference", reference=_short(reference_text))
    extraction = extract_answers(response)
    extraction = _boxed_parts_of_a_list(extraction, parsed_reference)
    details: dict[str, Any] = {"extracted": [_short(a) for a in extraction.answers],
                               "source": extraction.source, "reference": _short(reference_text)}
    if finish_reason is not None:
        details["finish_reason"] = str(finish_reason)[:40]
    if not extraction.found:
        return _result(False, _NO_ANSWER_REASONS.get(extraction.source, "no final answer found"), **details)
    if is_truncated(finish_reason) and not committed(response, extraction):
        return _result(False, f"truncated (finish_reason {finish_reason!r}) before committing to an answer "
                              f"(found only {extraction.source})", **details)
    for answer_text in extraction.answers:
        try:
            parsed = stated_value(answer_text, parse_answer(answer_text))
        except (ParseError, TypeError, ValueError, AttributeError) as exc:
            return _result(False, f"unreadable answer {_short(answer_text)!r}: {exc}", **details)
        try:
            readings = [parsed_reference] if _names_something(parsed) else reference_readings(parsed_reference)
            equal = any(answers_equal(reading, parsed, rel_tol) for reading in readings)
        except (MemoryError, RecursionError):
            raise
        except Exception as exc:  # sympy refusing a comparison: the answer is not shown equal, so it fails
            return _result(False, f"cannot compare {_short(answer_text)!r}: {type(exc).__name__}", **details)
        if not equal:
            return _result(False, _wrong_reason(extraction.answers, answer_text), **details)
    return _result(True, f"equal ({extraction.source})", **details)


def reference_answer(reference: str) -> str:
    """A reference may be a whole solution: then its last boxed answer is the reference.

    A reference made of several boxes with at most a few words between them (`\\boxed{1} and
    \\boxed{2}`, `\\boxed{1} papers and \\boxed{2} bins`) is the list of them.
    """
    boxed = find_boxed(reference)
    if not boxed:
        return reference.strip()
    outside = reference
    for box in boxed:
        outside = outside.replace(box, "", 1)
    if len(boxed) > 1 and _only_separators(re.sub(r"\\(?:boxed|fbox)", "", outside), len(boxed)):
        return ", ".join(b.strip() for b in boxed)
    return boxed[-1].strip()


def parse_reference(text: str) -> tuple[str, Parsed]:
    """Parse a reference. One written as prose ("the answer is sqrt(2)", "answer is 10000") is its stated
    answer (never the product t*h*e*...); one that cannot be read as an answer may be a whole solution
    without a box (its stated final answer) or a chain `1 = \\zzz = x = 0` (its last side)."""
    stated = extract_answers(text)
    if stated.source in STATED_SOURCES and len(stated.answers) == 1:  # never a guess such as the last number
        try:
            return stated.answers[0], parse_answer(stated.answers[0])
        except (ParseError, TypeError, ValueError, AttributeError):
            pass
    try:
        return text, parse_answer(text)
    except (ParseError, TypeError, ValueError, AttributeError):
        candidates = list(stated.answers) if stated.source in STATED_SOURCES else []
        last_side = None if _NOT_ONE_CHAIN.search(text) else _LAST_SIDE.search(text)
        candidates += [last_side.group(1)] if last_side and last_side.group(1).strip(" $") else []
        for candidate in candidates[:2]:
            try:
                return candidate, parse_answer(candidate)
            except (ParseError, TypeError, ValueError, AttributeError):
                continue
        raise


def reference_readings(reference: Parsed) -> list[Parsed]:
    """The reference, and also its named values (`AB=4, CD=5` -> `4, 5`) when it names them."""
    named = named_values(reference.value) if reference.value is not None else None
    if named is None or named == reference.value:
        return [reference]
    return [reference, dataclasses.replace(reference, value=named, decimal=None)]


def _names_something(answer: Parsed) -> bool:
    """An answer with an equation (`y = 5`) is held to the reference's names (`x = 5` is not it)."""
    return isinstance(answer.value, (sympy.Basic, sympy.MatrixBase)) and bool(answer.value.atoms(Equality))


def _only_separators(outside: str, boxes: int) -> bool:
    """Text around several boxes that makes them one list: separators and a few words, no math."""
    if _ONLY_SEPARATORS.fullmatch(outside):
        return True
    words = re.findall(r"[a-zA-Z]+", outside)
    return len(words) <= 2 * boxes and not re.search(r"[=<>0-9]|\\[a-zA-Z]", outside)


def _boxed_parts_of_a_list(extraction: Extraction, reference: Parsed) -> Extraction:
    """Several boxes that together give a list reference (`\\boxed{1}, \\boxed{2}` vs `{1, 2}`)
    are one answer: the list. Against any other reference several different boxes stay a hedge."""
    count = len(extraction.answers)
    if extraction.source != "boxed" or count < 2 or not isinstance(reference.value, (sympy.FiniteSet, AnswerList)):
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
