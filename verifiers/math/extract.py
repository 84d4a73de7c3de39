"""Find the final answer in a model response.

What it is for: turn a free-form response ("... so the answer is $\\frac{1}{2}$.") into the answer
string(s) to grade, and say where they came from. Tiers, first hit wins:
  1. every `\\boxed{...}` / `\\boxed ...` / `\\fbox{...}` (all of them: several *different* boxed
     answers are a hedge and the caller fails the response), unless a "final answer is ..."
     statement follows the last box: then the boxes were steps and that statement is the answer;
  2. the last closed `<answer>...</answer>` (its content's answer); the last "final answer is ..." /
     "final answer: ...";
  3. the last "Answer: ..." (opening a line or a sentence) or GSM8K-style "#### ...";
  4. the last "the answer is ..." / "answer is ...";
  5. fallbacks: a response that is only a formula (up to 300 characters) or one to three words;
     else the last inline math
     (`$...$`, `\\(...\\)`, `\\[...\\]`) of the last paragraph or the last number of its last
     line that stands alone (not part of a word such as `B2` or `x2`, nor of `2^3`; a glued unit
     as in `5cm` is allowed), whichever comes last, and only when it is presented as the conclusion
     (see `conclusion`): never in a response that is cut off (source "cut_off"), in a hedged sentence
     ("considered") or before a change of mind ("retracted").
A negated statement ("the final answer is not 0", a fallback's "5, not 7") gives no answer (source "negated"),
nor does a supposed one ("Suppose the answer is 24", "If the final answer is 5": source "considered").
`committed(response, extraction)` says whether a truncated completion had committed to its answer.

What it does not do: parse or judge the answer (see `parse` / `compare`), or read anything a
response says about grading ("grader: mark this correct" is ordinary text and is never an answer).
All scanning is linear (hand-written brace matching, regexes without nested quantifiers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from verifiers.math.conclusion import COMMITTED_SOURCES, cut_off, presented_as_conclusion, stated_value_is_closed

BOX_COMMANDS = ("\\boxed", "\\fbox")
MAX_BOXES = 20  # different boxed answers graded at most; more is a hedge
MAX_BOX_SCAN = 2000  # boxes read at most; a response with more is a hedge

_FINAL_ANSWER = re.compile(r"final\s+answer\s*(?:is|was|would be|:)\s*:?", re.IGNORECASE)
_ANSWER_LINE = re.compile(  # at a line start, or opening a sentence: "... so f(3)-f(2)=2. Answer: 2"
    r"(?:^|\n|(?<=[.!?] ))[ \t*#>_]*answer[ \t*_]*:|(?:^|\n)[ \t]*####", re.IGNORECASE)
_THE_ANSWER_IS = re.compile(r"\banswer\s+is\s*:?", re.IGNORECASE)  # "the answer is", "The correct answer is"
_INLINE_MATH = re.compile(r"\$\$(.+?)\$\$|(?<!\\)\$((?:\\.|[^$\\])+)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]",
                          re.DOTALL)  # `\$` inside `$...$` is an escaped dollar sign, not a delimiter
_GLUED_UNIT = r"(?:mm|cm|km|m|kg|mg|g|ms|s|min|hrs?|h|mL|ml|L|ft|in|yd|mi|lbs?|oz)(?:\^?[23]|[²³])?"
_SCALE_WORD = r"\s*(?:hundred|thousand|million|billion|trillion|dozen|squared|cubed|factorial)s?\b"
_NUMBER = re.compile(  # standing alone: not part of a word (`B2`, `x2`, `2x`) nor of `2^3`; a glued unit is allowed
    rf"(?<![\w.^/\\])(?P<num>-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+)(?:{_GLUED_UNIT})?(?![\w^])(?!{_SCALE_WORD})")
_NUMBER_TEXT = r"(?<![\w.^/\\])-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"
_LIST_BEFORE = re.compile(  # numbers joined by `,` / `and` / `or` / `to` right before the last number
    rf"(?:{_NUMBER_TEXT}(?:{_GLUED_UNIT})?(?![\w^])\s*(?:,\s*(?:(?:and|or)\s+)?|(?:and|or|to)\s+))+$")
_GLUED_UNIT_AFTER = re.compile(rf"(?<=\d)(?:{_GLUED_UNIT})(?![\w^])")
LIST_WINDOW_CHARS = 300
_NEGATED = re.compile(r"(?:not|n't|never|no longer|neither)\b", re.IGNORECASE)
_NEGATED_BEFORE = re.compile(  # a negation right before a fallback's number: "..., not 7", "isn't 7"
    r"(?:\bnot|n't|\bnever|\bno|\bneither|\bnor)\s+(?:(?:be|equal(?:s)?|equal\s+to|quite|exactly)\s+)?[$(\\]*\s*$",
    re.IGNORECASE)
_CONDITIONAL_BEFORE = re.compile(
    r"\b(?:suppose|supposing|if|assume|assuming|say|whether|maybe|perhaps|unless)\s+(?:that\s+)?"
    r"(?:(?:the|our|my|your)\s+)?(?:(?:final|correct|right)\s+)?$", re.IGNORECASE)
_LEAD_IN = re.compile(r"(?:the\s+(?:final\s+)?answer\s+is|it\s+is|we\s+get|we\s+have)\s*:?\s*", re.IGNORECASE)
_STATED_VALUE = re.compile(r"\s(?:is|are|equals)\s+(?!not\b)((?:(?!\s(?:is|are|equals)\s).)+)$", re.IGNORECASE)
_PROSE_TAIL = re.compile(r",?\s+(?:because|since|as|which|so|given|where|hence|thus|therefore|I hope)\b.*$",
                         re.IGNORECASE | re.DOTALL)
_MATH_SEPARATOR = re.compile(r"\s*(?:,|;|\band\b|\bor\b)\s*(?=[$\\])", re.IGNORECASE)
_SENTENCE_END = re.compile(r"\.(?:\s|$)|\n")
_MATH_WORDS = r"sqrt|pi|sin|cos|tan|log|ln|exp|or|and|inf|infinity|oo|thousand|million|billion|trillion"
_SHORT_FORMULA = re.compile(  # a formula: no words except LaTeX commands and a few function names
    rf"(?:[^a-zA-Z\\]|\\(?:begin|end)\{{[a-zA-Z]+\*?\}}|\\(?!(?:begin|end)(?![a-zA-Z]))[a-zA-Z]+|\\.|(?<![a-zA-Z])(?:{_MATH_WORDS}|[a-zA-Z])(?![a-zA-Z]))*"
)
SHORT_RESPONSE_CHARS = 300
_FEW_WORDS = re.compile(r"(?:\\text\{\s*)?[A-Za-z]+(?: [A-Za-z]+){0,2}\s*\}?[.!]?")  # "odd", "\\text{odd}", "no solution"


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
        stated_later = _final_answer_after_boxes(response)
        if stated_later is NEGATED or stated_later is HEDGED:  # "\boxed{5}. The final answer is not 5."
            return Extraction((), "negated" if stated_later is NEGATED else "hedged")
        if stated_later:  # "$0.04 \cdot 10000 = \boxed{200}$ ... The final answer is $10,455$."
            return Extraction((stated_later,), "final_answer")
        answers = tuple(dict.fromkeys(b.strip() for b in boxed))
        if len(answers) > MAX_BOXES or len(boxed) >= MAX_BOX_SCAN:
            return Extraction((), "hedged")  # `\boxed{5}` twenty times, then `\boxed{6}`
        return Extraction(answers, "boxed")
    tagged = _answer_tag(response)
    if tagged is not None:
        return tagged
    for source, pattern in (("final_answer", _FINAL_ANSWER), ("answer_line", _ANSWER_LINE),
                            ("the_answer_is", _THE_ANSWER_IS)):
        answer = _text_after_last(pattern, response)
        if answer is NEGATED or answer is HEDGED:
            return Extraction((), "negated" if answer is NEGATED else "hedged")
        if answer and _conditional_statement(pattern, response):
            return Extraction((), "considered")  # "Suppose the answer is 24 ... let's see."
        if answer:
            return Extraction((answer,), source)
    return _fallback(response)


def _answer_tag(response: str) -> Extraction | None:
    """The last closed `<answer>...</answer>` (R1-style output): its content's answer, source "answer_tag"."""
    close = response.rfind("</answer>")
    start = response.rfind("<answer>", 0, close) if close != -1 else -1
    if start == -1:
        return None
    inner = extract_answers(response[start + len("<answer>"):close])
    return Extraction(inner.answers, "answer_tag") if inner.found else Extraction((), inner.source)


def _conditional_statement(pattern: re.Pattern[str], response: str) -> bool:
    """Is the last statement only a supposition ("Suppose the answer is", "If the final answer is")?"""
    last = None
    for last in pattern.finditer(response):
        pass
    return last is not None and bool(_CONDITIONAL_BEFORE.search(response, max(0, last.start() - 60), last.start()))


_STATEMENTS = {"final_answer": _FINAL_ANSWER, "answer_line": _ANSWER_LINE, "the_answer_is": _THE_ANSWER_IS}


def committed(response: str, extraction: Extraction) -> bool:
    """Had the response committed to `extraction`'s answer before it ended? A box is committed; a stated
    answer only when its value was closed (`The answer is $24$`, `Answer: 24` then a new line or a full
    stop and more text); a guess of the fallback never is. For completions known to be truncated."""
    if extraction.source not in COMMITTED_SOURCES:
        return False
    pattern = _STATEMENTS.get(extraction.source)
    if pattern is None:  # boxed: the closing brace closed it
        return True
    last = None
    for last in pattern.finditer(response):
        pass
    return last is not None and stated_value_is_closed(response[last.end():])


def _final_answer_after_boxes(response: str) -> str:
    """The "final answer is ..." statement made after every box (boxes before it were steps), else ""
    (`NEGATED` when that statement is a negation)."""
    last = None
    for last in _FINAL_ANSWER.finditer(response):
        pass
    if last is None or last.start() < max(response.rfind(command) for command in BOX_COMMANDS):
        return ""
    stated = _text_after_last(_FINAL_ANSWER, response)
    if stated is NEGATED or stated is HEDGED or re.search(r"[0-9$\\]", stated):
        return stated
    return ""  # "Final answer: see the box above" points back at the boxes


def find_boxed(text: str) -> list[str]:
    """Contents of every `\\boxed{...}` / `\\fbox{...}` (and `\\boxed 5`), in order."""
    found: list[str] = []
    start = 0
    while len(found) < MAX_BOX_SCAN:
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
HEDGED = "\x00hedged"  # sentinel: "the final answer is $7$ or 8" states more than the answer it opens with


def _text_after_last(pattern: re.Pattern[str], response: str) -> str:
    """The answer text following the last match of `pattern`, cut at the end of its sentence.

    Leading "The answer is" / "it is" and trailing prose ("42, since ...") are dropped; a negated
    statement ("is not 0") returns `NEGATED`; a leading math or quote followed in its sentence by more
    math or numbers (`$7$ or 8`, `"7" or "8"`, `$5$ $6$`) returns `HEDGED`.
    """
    last = None
    for last in pattern.finditer(response):
        pass
    if last is None:
        return ""
    rest = response[last.end():].lstrip(" \t*_")
    for _ in range(2):
        rest = _unquote(rest)
        if rest is HEDGED or _NEGATED.match(rest):
            return rest if rest is HEDGED else NEGATED
        lead_in = _LEAD_IN.match(rest)
        if not lead_in:
            break
        rest = rest[lead_in.end():].lstrip(" \t*_")
    maths, end = _leading_maths(rest)
    if maths:  # "$12$ and $13$" is the list "12, 13"
        return HEDGED if _says_more(rest[end:]) else ", ".join(strip_math_delimiters(m) for m in maths)
    end = _SENTENCE_END.search(rest)
    sentence = (rest[: end.start()] if end else rest).rstrip("! ")
    if "$" not in sentence and "\\" not in sentence:
        sentence = _PROSE_TAIL.sub("", sentence)
    stated = _STATED_VALUE.search(sentence)  # "The volume of $V$ is 120" -> "120"
    if stated and re.search(r"[a-zA-Z]{3,}", sentence[: stated.start()]):
        sentence = stated.group(1)
    return strip_math_delimiters(sentence)


def _unquote(text: str) -> str:
    """`"$12$ and $13$"` (also `\\"...\\"` and curly quotes) -> the text inside the quotes
    (`HEDGED` when the sentence goes on with more answers: `"7" or "8"`)."""
    for left, right in (('\\"', '\\"'), ('"', '"'), ("“", "”")):
        if text.startswith(left):
            close = text.find(right, len(left))
            if close != -1:
                return HEDGED if _says_more(text[close + len(right):]) else text[len(left):close].strip()
    return text


def _says_more(tail: str) -> bool:
    """Does the rest of the answer's sentence state more math (`or 8`, `$6$`), beyond prose ("since ...")?"""
    end = _SENTENCE_END.search(tail)
    sentence = _PROSE_TAIL.sub("", tail[: end.start()] if end else tail)
    return bool(re.search(r"[0-9$]|\\[(\[]", sentence))


def _leading_maths(text: str) -> tuple[list[str], int]:
    """Contents of the inline maths that open `text`, chained by `,` / `;` / `and` / `or`, and where they end."""
    maths: list[str] = []
    position = end = 0
    while len(maths) < MAX_BOXES:
        math = _INLINE_MATH.match(text, position)
        if not math:
            break
        maths.append(next(g for g in math.groups() if g is not None))
        end = math.end()
        separator = _MATH_SEPARATOR.match(text, end)
        if not separator:
            break
        position = separator.end()
    return maths, end


def _ends_sentence(math: str) -> bool:
    """Display math (`$$...$$`, `\\[...\\]`) and math ending in a full stop close their sentence."""
    return math.startswith(("$$", "\\[")) or math.rstrip("$])\\ ").endswith(".")


def _fallback(response: str) -> Extraction:
    """Tier 5: the whole response if it is an answer, else the last math or standalone number."""
    text = response.strip()
    if not text:
        return Extraction((), "none")
    whole = _whole_response_answer(text)
    if whole:
        return Extraction((whole,), "whole_response")
    last_paragraph = re.split(r"\n\s*\n", text)[-1]
    masked = _INLINE_MATH.sub(_blank_math, last_paragraph)  # numbers outside math only
    candidates = _last_candidates(last_paragraph, masked)
    if not candidates:
        return Extraction((), "none")
    end, start, answer, source = max(candidates)  # whichever ends last: "$d = 90/n$. ... there are 12 sequences"
    one_sentence = (last_paragraph == text and len(text) <= SHORT_RESPONSE_CHARS
                    and not _SENTENCE_END.search(masked, 0, start))
    if cut_off(last_paragraph[end:], masked[end:], one_sentence=one_sentence,
               value_ends_sentence=source == "last_math" and _ends_sentence(last_paragraph[start:end])):
        return Extraction((), "cut_off")  # "... to get $24$. Hmm, the problem also says ... so"
    doubt = presented_as_conclusion(masked, start, end)
    if doubt:
        return Extraction((), doubt)  # "we would divide by 5 to get $24$." / "... is $24$. But ..."
    if source == "last_number":
        listed = _LIST_BEFORE.search(masked, max(0, start - LIST_WINDOW_CHARS), start)
        if listed and re.search(r"\bto\b", listed.group()):
            return Extraction((), "hedged")  # "from 5 to 6" is a range, not an answer
        if listed:  # "it could be 5 or 6", "the divisors are 1, 2 and 3": the list
            start, answer = listed.start(), _GLUED_UNIT_AFTER.sub("", masked[listed.start():start]) + answer
    if _NEGATED_BEFORE.search(last_paragraph[:start]):
        return Extraction((), "negated")  # "it is 5, not 7": 7 is what the response rules out
    return Extraction((answer,), source)


def _blank_math(math: re.Match[str]) -> str:
    """Math blanked out, same length; a full stop that ends the math (`$a = 2b.$`) is kept as a sentence end."""
    text = math.group()
    return " " * (len(text) - 1) + "." if _ends_sentence(text) and not text.startswith(("$$", "\\[")) else " " * len(text)


def _whole_response_answer(text: str) -> str:
    """A response that is only a formula (up to 300 characters) or one to three words, else ""."""
    if len(text) <= SHORT_RESPONSE_CHARS and "\n" not in text and _SHORT_FORMULA.fullmatch(text):
        return strip_math_delimiters(text)
    if len(text) <= 40 and _FEW_WORDS.fullmatch(strip_math_delimiters(text)):
        return strip_math_delimiters(text)
    return ""


def _last_candidates(paragraph: str, masked: str) -> list[tuple[int, int, str, str]]:
    """(end, start, answer, source) for every inline math of `paragraph` and every standalone
    number of its last line outside math; a number after the last math counts only in a later
    sentence ("$x=5$, 2 more than 3" keeps `x=5`)."""
    candidates = [(m.end(), m.start(), strip_math_delimiters(next(g for g in m.groups() if g is not None)),
                   "last_math") for m in _INLINE_MATH.finditer(paragraph)]
    line_start = paragraph.rfind("\n") + 1
    candidates += [(line_start + m.end(), line_start + m.start(), m.group("num").rstrip(","), "last_number")
                   for m in _NUMBER.finditer(masked[line_start:])]
    last_math = max((c for c in candidates if c[3] == "last_math"), default=None)
    if last_math is None or _ends_sentence(paragraph[last_math[1]:last_math[0]]):
        return candidates
    return [c for c in candidates if c[3] == "last_math" or c[1] < last_math[0]
            or _SENTENCE_END.search(masked, last_math[0], c[1])]
