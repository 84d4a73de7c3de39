"""Find the final answer in a model response.

What it is for: turn a free-form response ("... so the answer is $\\frac{1}{2}$.") into the answer
string(s) to grade, and say where they came from. Tiers, first hit wins:
  1. every `\\boxed{...}` / `\\boxed ...` / `\\fbox{...}` (all of them: several *different* boxed
     answers are a hedge and the caller fails the response);
  2. the last "final answer is ..." / "final answer: ...";
  3. the last "Answer: ..." line or GSM8K-style "#### ...";
  4. the last "the answer is ...";
  5. fallbacks: a response that is only a short formula; else the last inline math
     (`$...$`, `\\(...\\)`, `\\[...\\]`) of the last paragraph; else the last number of the last
     line that stands alone (not part of a word such as `B2` or `x2`, nor of `2^3`).
A negated statement ("the final answer is not 0", a fallback's "5, not 7") gives no answer (source "negated").

What it does not do: parse or judge the answer (see `parse` / `compare`), or read anything a
response says about grading ("grader: mark this correct" is ordinary text and is never an answer).
All scanning is linear (hand-written brace matching, regexes without nested quantifiers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOX_COMMANDS = ("\\boxed", "\\fbox")
MAX_BOXES = 20

_FINAL_ANSWER = re.compile(r"final\s+answer\s*(?:is|was|would be|:)\s*:?", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"(?:^|\n)[ \t*#>_]*answer[ \t*_]*:|(?:^|\n)[ \t]*####", re.IGNORECASE)
_THE_ANSWER_IS = re.compile(r"\bthe\s+answer\s+is\s*:?", re.IGNORECASE)
_INLINE_MATH = re.compile(r"\$\$(.+?)\$\$|(?<!\\)\$((?:\\.|[^$\\])+)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]",
                          re.DOTALL)  # `\$` inside `$...$` is an escaped dollar sign, not a delimiter
_NUMBER = re.compile(r"(?<![\w.^/\\])(?:-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+)(?![\w^])")  # standing alone
_NEGATED = re.compile(r"(?:not|n't|never|no longer|neither)\b", re.IGNORECASE)
_NEGATED_BEFORE = re.compile(  # a negation right before a fallback's number: "..., not 7", "isn't 7"
    r"(?:\bnot|n't|\bnever|\bno|\bneither|\bnor)\s+(?:(?:be|equal(?:s)?|equal\s+to|quite|exactly)\s+)?[$(\\]*\s*$",
    re.IGNORECASE)
_LEAD_IN = re.compile(r"(?:the\s+(?:final\s+)?answer\s+is|it\s+is|we\s+get|we\s+have)\s*:?\s*", re.IGNORECASE)
_STATED_VALUE = re.compile(r"\s(?:is|are|equals)\s+(?!not\b)((?:(?!\s(?:is|are|equals)\s).)+)$", re.IGNORECASE)
_PROSE_TAIL = re.compile(r",?\s+(?:because|since|as|which|so|given|where|hence|thus|therefore|I hope)\b.*$",
                         re.IGNORECASE | re.DOTALL)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
_MATH_WORDS = r"sqrt|pi|sin|cos|tan|log|ln|exp|or|and|inf|infinity|oo"
_SHORT_FORMULA = re.compile(  # a formula: no words except LaTeX commands and a few function names
    rf"(?:[^a-zA-Z\\]|\\[a-zA-Z]+|\\.|(?<![a-zA-Z])(?:{_MATH_WORDS}|[a-zA-Z])(?![a-zA-Z]))*"
)
SHORT_RESPONSE_CHARS = 60


@dataclass(frozen=True)
class Extraction:
    """The answer strings found in a response and the tier that found them."""

    answers: tuple[str, ...]
    source: str

    @property
    def found(self) -> bool:
        return bool(self.answers)


def extract_answers(response: str) -> Extraction:
    """Return the final answer(s) of `response` (empty `answers` when none is found)."""
    boxed = find_boxed(response)
    if boxed:
        return Extraction(tuple(dict.fromkeys(b.strip() for b in boxed)), "boxed")
    for source, pattern in (("final_answer", _FINAL_ANSWER), ("answer_line", _ANSWER_LINE),
                            ("the_answer_is", _THE_ANSWER_IS)):
        answer = _text_after_last(pattern, response)
        if answer is NEGATED:
            return Extraction((), "negated")
        if answer:
            return Extraction((answer,), source)
    return _fallback(response)


def find_boxed(text: str) -> list[str]:
    """Contents of every `\\boxed{...}` / `\\fbox{...}` (and `\\boxed 5`), in order."""
    found: list[str] = []
    start = 0
    while len(found) < MAX_BOXES:
        hit = _next_box_command(text, start)
        if hit is None:
            return found
        cmd_end = hit
        content, start = _box_argument(text, cmd_end)
        if content is not None:
            found.append(content)
    return found


def matching_brace(text: str, open_index: int) -> int:
    """Index of the `}` closing the `{` at `open_index`, or -1 when unbalanced (`\\{` is skipped)."""
    depth = 0
    i = open_index
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def strip_math_delimiters(answer: str) -> str:
    """Remove surrounding `$`, `\\(`, `\\[` and trailing sentence punctuation (not `\\;` or `5!`)."""
    text = _strip_trailing_punctuation(answer.strip())
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if text.startswith(left) and text.endswith(right) and len(text) >= len(left) + len(right):
            text = text[len(left):len(text) - len(right)].strip()
    return _strip_trailing_punctuation(text)


def _strip_trailing_punctuation(text: str) -> str:
    while text and text[-1] in " .;:" and not text[:-1].endswith("\\"):
        text = text[:-1]
    return text


def _next_box_command(text: str, start: int) -> int | None:
    """End index of the next box command name at or after `start`."""
    hits = []
    for command in BOX_COMMANDS:
        index = text.find(command, start)
        while index != -1 and text[index + len(command): index + len(command) + 1].isalpha():
            index = text.find(command, index + 1)
        if index != -1:
            hits.append((index, index + len(command)))
    return min(hits)[1] if hits else None


def _box_argument(text: str, cmd_end: int) -> tuple[str | None, int]:
    """Parse the argument after a box command; returns (content, index to resume at)."""
    i = cmd_end
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        close = matching_brace(text, i)
        if close == -1:
            return None, i + 1
        return text[i + 1:close], close + 1
    match = re.match(r"[^\s$.,]+", text[i:])
    if match and i > cmd_end:
        return match.group(0), i + match.end()
    return None, i


NEGATED = "\x00negated"  # sentinel: "the final answer is not 0" states no answer


def _text_after_last(pattern: re.Pattern[str], response: str) -> str:
    """The answer text following the last match of `pattern`, cut at the end of its sentence.

    Leading "The answer is" / "it is" and trailing prose ("42, since ...") are dropped; a negated
    statement ("is not 0") returns `NEGATED`.
    """
    last = None
    for last in pattern.finditer(response):
        pass
    if last is None:
        return ""
    rest = response[last.end():].lstrip(" \t*_")
    for _ in range(2):
        if _NEGATED.match(rest):
            return NEGATED
        lead_in = _LEAD_IN.match(rest)
        if not lead_in:
            break
        rest = rest[lead_in.end():].lstrip(" \t*_")
    math = _INLINE_MATH.match(rest)
    if math:
        return strip_math_delimiters(next(g for g in math.groups() if g is not None))
    end = _SENTENCE_END.search(rest)
    sentence = (rest[: end.start()] if end else rest).rstrip("! ")
    if "$" not in sentence and "\\" not in sentence:
        sentence = _PROSE_TAIL.sub("", sentence)
    stated = _STATED_VALUE.search(sentence)  # "The volume of $V$ is 120" -> "120"
    if stated and re.search(r"[a-zA-Z]{3,}", sentence[: stated.start()]):
        sentence = stated.group(1)
    return strip_math_delimiters(sentence)


def _fallback(response: str) -> Extraction:
    text = response.strip()
    if not text:
        return Extraction((), "none")
    if len(text) <= SHORT_RESPONSE_CHARS and "\n" not in text and _SHORT_FORMULA.fullmatch(text):
        return Extraction((strip_math_delimiters(text),), "whole_response")
    last_paragraph = re.split(r"\n\s*\n", text)[-1]
    maths = [next(g for g in m.groups() if g is not None) for m in _INLINE_MATH.finditer(last_paragraph)]
    if maths:
        last = list(_INLINE_MATH.finditer(last_paragraph))[-1]
        if _NEGATED_BEFORE.search(last_paragraph[: last.start()]):
            return Extraction((), "negated")
        return Extraction((strip_math_delimiters(maths[-1]),), "last_math")
    last_line = text.splitlines()[-1]
    numbers = list(_NUMBER.finditer(last_line))
    if numbers:
        if _NEGATED_BEFORE.search(last_line[: numbers[-1].start()]):
            return Extraction((), "negated")  # "it is 5, not 7": 7 is what the response rules out
        return Extraction((numbers[-1].group().rstrip(","),), "last_number")
    return Extraction((), "none")
