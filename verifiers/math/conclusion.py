"""Is an answer *committed*? The rules that keep a value the response only passed through from passing.

What it is for: issue 22's "no committed answer, no pass". Two questions, asked by `extract` and `check`:
  1. For the guessing fallback (no box, no "answer" statement): is the last value presented as the
     conclusion? Never when the response is cut off after it (`... = 7. Then multiplying by`: text
     after the value that neither ends a sentence nor is a few unit words), when the value's sentence is hedged ("would", "maybe",
     "suppose", "let's check", "hmm", "wait", a question, ...; "if" when the value is its condition or sits
     in it, never in a consequent: `If $N^2 = 121$, then $N = 11$.` concludes), or when a change of mind follows it
     ("but", "however", "actually", "hmm", "wait", ...).
  2. For a completion that was truncated (`finish_reason` "length", or "max_tokens" / "content_filter":
     the text stopped before the model ended it): was the answer committed before the cut? Only a box,
     a closed `<answer>...</answer>`,
     or a "final answer" / "Answer:" / "the answer is" statement whose value is closed (closed math, or
     its sentence ended before the text did: "The answer is 24" at the very end may be "240" cut short).

What it does not do: find candidates (see `extract`) or judge them. A `finish_reason` of None means
"unknown": only rule 1 applies then; rule 2 needs the caller to say the completion was truncated.
"""

from __future__ import annotations

import re

TRUNCATED_FINISH_REASONS = frozenset({"length", "max_tokens", "content_filter"})
COMMITTED_SOURCES = frozenset({"boxed", "boxed_list", "answer_tag", "final_answer", "answer_line", "the_answer_is"})
STATED_SOURCES = frozenset({"final_answer", "answer_line", "the_answer_is"})

_END_TOKEN = re.compile(r"(?:<\|[^|<>\n]{1,40}\|>|</s>|<eos>)[a-z]{0,12}$")  # `... 2/3. <|im_start|>user`
END_TOKEN_WINDOW = 60
_CLOSERS = " \t\n*_\"'”’)]}$"
MAX_UNIT_WORDS = 3
CONTINUATION_WORDS = frozenset({
    "and", "or", "then", "so", "to", "by", "of", "the", "a", "an", "we", "i", "it", "this", "that", "which", "with",
    "for", "from", "into", "plus", "minus", "times", "divided", "multiplied", "is", "are", "was", "be", "if", "but",
    "when", "as", "at", "in", "on", "not", "because", "since", "thus", "hence", "therefore", "let", "now", "next",
    "where", "while", "after", "before", "gives", "get", "gets", "equals", "over", "than", "more", "less",
})
_TERMINAL_CLOSERS = " \t\r\n*_\"'”’)]"  # closing markdown, quotes and brackets after the full stop
_DISPLAY_END = re.compile(r"(?:\$\$|\\\]|\\end\{(?:align|aligned|equation|gather|eqnarray|multline|displaymath)\*?\})$")
_SENTENCE_BREAK = re.compile(r"[.!?](?=\s)|\n")
HEDGE_WORDS = re.compile(
    r"\b(?:would|maybe|suppose|supposing|assume|assuming|let'?s\s+(?:check|see|try|verify)|let\s+me\s+(?:check|see|try)"
    r"|hmm+|wait|perhaps|might|guess|probably|possibly|not\s+sure|i\s+think|could)\b|\?",
    re.IGNORECASE)
CHANGE_OF_MIND = re.compile(
    r"\b(?:but|however|actually|hmm+|wait|oops|no\s+wait|mistake|reconsider|re-?check|double-?check|instead)\b",
    re.IGNORECASE)
_IFF = re.compile(r"\bif\s+and\s+only\s+if\b|\bonly\s+if\b|\beven\s+if\b", re.IGNORECASE)
_CONSEQUENT = re.compile(r",|\bthen\b", re.IGNORECASE)
_CLOSED_SENTENCE = re.compile(r"[.!?](?=\s)|\n|[.!?](?<!\d\.)$")


def is_truncated(finish_reason: str | None) -> bool:
    """True when the caller says the completion stopped before the model ended it."""
    return isinstance(finish_reason, str) and finish_reason.strip().lower() in TRUNCATED_FINISH_REASONS


def cut_off(raw_tail: str, masked_tail: str, *, one_sentence: bool, value_ends_sentence: bool = False) -> bool:
    """Is the response cut off after its last value? `raw_tail` is the text after the value, `masked_tail`
    the same with its math blanked out; `one_sentence`: the response is a single short sentence;
    `value_ends_sentence`: the value itself closes its sentence (display math, `$x = 5.$`).

    Not cut off: a tail that ends a sentence (`.`, `!`, `?`, display math; end tokens such as
    `<|im_start|>` ignored); in a one-sentence response also nothing after the value (`The answer: 24`,
    `$x != 5$`) or up to three unit words (`28 percent`, `12 square units`). Cut off: anything else, so a
    response of several sentences must end its last one (`... = 7. Then multiplying by`, `$24$. Hmm, the
    problem also says ... so`, `... two numbers with units digit $6$`)."""
    raw = strip_end_tokens(raw_tail)
    if not raw.strip(_CLOSERS):  # nothing after the value
        return not (one_sentence or value_ends_sentence)
    if ends_complete(raw):
        return False
    if not one_sentence:
        return True
    words_tail = strip_end_tokens(masked_tail).strip(_CLOSERS)
    if _SENTENCE_BREAK.search(words_tail + " ") or re.search(r"[0-9=+\-*/^]", words_tail):
        return True
    words = re.findall(r"[A-Za-z']+", words_tail)
    return len(words) > MAX_UNIT_WORDS or any(word.lower() in CONTINUATION_WORDS for word in words)


def strip_end_tokens(text: str) -> str:
    """`text` without the chat-template end tokens that close it (`<|im_end|>`, `<|im_start|>user`, `</s>`).
    Linear: each round looks at a bounded window at the end and removes one token."""
    while True:
        stripped = text.rstrip()
        token = _END_TOKEN.search(stripped[-END_TOKEN_WINDOW:])
        if token is None:
            return text
        text = stripped[: len(stripped) - (min(len(stripped), END_TOKEN_WINDOW) - token.start())]


def ends_complete(text: str) -> bool:
    """Does `text` end a sentence (`.`, `!`, `?`, or display math)? `$x = 5.$` and `**24**.` do."""
    text = strip_end_tokens(text).rstrip()
    if _DISPLAY_END.search(text[-40:]):
        return True
    text = text.rstrip(_TERMINAL_CLOSERS)
    if text.endswith("$"):  # inline math: `$x = 5.$` ends its sentence inside the math
        text = text.rstrip("$").rstrip()
    return bool(text) and text[-1] in ".!?"


def sentence_around(masked: str, start: int, end: int) -> tuple[str, int, str]:
    """(the sentence holding `masked[start:end]`, the value's offset in it, the text after the value) in
    `masked`, the paragraph with its math blanked out (so `3.5` or `\\cdot` never split a sentence)."""
    before = [m.end() for m in _SENTENCE_BREAK.finditer(masked, 0, start)]
    after = _SENTENCE_BREAK.search(masked, end)
    sentence_start = before[-1] if before else 0
    sentence_end = after.start() if after else len(masked)
    return masked[sentence_start:sentence_end], start - sentence_start, masked[end:]


def presented_as_conclusion(masked: str, start: int, end: int) -> str:
    """"" when the value at `masked[start:end]` is a conclusion, else why not ("considered" / "retracted")."""
    sentence, offset, tail = sentence_around(masked, start, end)
    if HEDGE_WORDS.search(sentence) or _under_a_condition(sentence, offset):
        return "considered"
    if CHANGE_OF_MIND.search(tail):
        return "retracted"
    return ""


def _under_a_condition(sentence: str, offset: int) -> bool:
    """Is the value only supposed by an "if"? It is when the "if" follows it (`24 if we ignore rotations`)
    or when the value sits in the if-clause (`if we get 24`); a consequent (`if $N^2 = 121$, then $N = 11$`,
    `If 12 people order ..., they should order 8 meals`) is a conclusion, as is "if and only if"."""
    sentence = _IFF.sub(lambda m: " " * len(m.group()), sentence)
    conditions = [m.end() for m in re.finditer(r"\bif\b", sentence, re.IGNORECASE)]
    if not conditions:
        return False
    if conditions[-1] > offset:
        return True  # the condition follows the value
    last_consequent = max((m.start() for m in _CONSEQUENT.finditer(sentence, 0, offset)), default=-1)
    before = [end for end in conditions if end <= offset]
    return bool(before) and before[-1] > last_consequent  # the value sits in the last if-clause


def stated_value_is_closed(rest: str) -> bool:
    """`rest` is the text after an answer statement ("the answer is", "Answer:"): is the stated value
    closed before the text ends? Closed math (`$24$`), or a sentence end after it (`24.` then more text, a
    new line); a truncated "The answer is 24" or "... is 24." at the very end may be "240" / "24.5" cut short."""
    rest = rest.lstrip().lstrip("*_:").lstrip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if rest.startswith(left):
            return _closing(rest, len(left), right) != -1
    return bool(_CLOSED_SENTENCE.search(rest))


def _closing(text: str, start: int, right: str) -> int:
    """Index of the first unescaped `right` at or after `start`, else -1."""
    index = text.find(right, start)
    while index > 0 and text[index - 1] == "\\" and right == "$":
        index = text.find(right, index + 1)
    return index
