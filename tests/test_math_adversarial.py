"""Issue 14's false-positive classes and misses, each pinned; plus a fuzz run (no internal error)."""

import random

import pytest

from verifiers.math import verify
from verifiers.math.check import check

FALSE_POSITIVES = [  # (response, reference): each must FAIL
    (r"\boxed{(1,100)}", "1100"),
    (r"\boxed{\{10, 0\}}", r"10,\!000"),
    (r"\boxed{10}", r"10,\!000"),
    ("The final answer is not 0.", "0"),
    ("The answer is not $0$.", "0"),
    ("I pick option B2", "2"),
    ("We use x2 terms", "2"),
    (r"\boxed{1 000}", "0"),
    (r"\boxed{1:00}", "12:00"),
    (r"\boxed{1/0}", "2/0"),
    (r"\boxed{\frac{1}{0}}", r"\frac{2}{0}"),
    (r"\boxed{\frac{0}{0}}", r"\frac{0}{0}"),
    (r"\boxed{(-\infty, 1] \cup [2, 3)}", r"(-\infty,1)\cup(2,\infty)"),
    (r"\boxed{2x+2}", "f(x) = 2x + 1"),
    (r"\boxed{x \neq 4}", r"x \neq 3"),
    (r"\boxed{\begin{pmatrix}2\\5\end{pmatrix}}", r"2\begin{pmatrix}1\\2\end{pmatrix}"),
    (r"\boxed{19, 46}", "19, 46, and 82"),
    ("I think it's 5, not 7", "7"),          # the fallback's last number is the one ruled out
    ("There are no 7", "7"),
    ("it's not equal to 7", "7"),
    ("$5$ not $7$", "7"),
    # hedges and value words found by attacking our own extraction (session 2)
    ("The final answer is $7$ or 8.", "7"),
    ('Final Answer: "7" or "8"', "7"),
    ("Final answer: $5$ $6$", "5"),
    ("Answer: $5$ (or $6$)", "5"),
    (r"\boxed{5}. The final answer is not $5$.", "5"),
    (r"\boxed{5} " * 20 + r"\boxed{6}", "5"),
    (r"\boxed{5 \text{ or more}}", "5"),
    (r"\boxed{5 \text{ thousand}}", "5"),
    ("Final answer: 3 dozen", "3"),
    ("So it is 5 thousand", "5"),
    ("It could be 5 or 6", "6"),
    ("It is somewhere from 5 to 6", "6"),
    # comparison holes
    (r"\boxed{(2,1)}", r"\emptyset"),
    (r"\boxed{(y, x) = (1, 2)}", r"(x, y) = (1, 2)"),
    (r"\boxed{\pi + 10^{-90}}", r"\pi"),
    (r"\boxed{\text{A}\text{B}}", "A"),
    (r"\boxed{1,1,2}", "1, 2, 2"),
    (r"\boxed{y = 5}", "AB = 5"),
]
MISSES = [  # (response, reference): each must PASS
    (r"\boxed{10000}", r"10,\!000"),
    (r"\boxed{1,\!234}", "1234"),
    (r"\boxed{1 000}", "1000"),
    (r"\boxed{12:00}", "12:00"),
    (r"\boxed{x \neq 3}", r"x \neq 3"),
    (r"\boxed{x \in [1,2]}", "[1,2]"),
    (r"The answer is $\$5.00$", "5"),
    (r"\boxed{5\textbf{ cm}}", "5"),
    (r"\boxed{5 \textnormal{ cm}}", "5"),
    ("Final Answer: 42, since that is what we computed.", "42"),
    ("Final Answer: The answer is 42 because of symmetry", "42"),
    (r"\boxed{19, 46, and 82}", "19, 46, 82"),
    (r"\boxed{2x+1}", "f(x) = 2x + 1"),
    (r"\boxed{\begin{pmatrix}2\\4\end{pmatrix}}", r"2\begin{pmatrix}1\\2\end{pmatrix}"),
    (r"\boxed{\begin{pmatrix}1&2\\3&4\end{pmatrix}}",
     r"\begin{pmatrix}1&0\\0&1\end{pmatrix}+\begin{pmatrix}0&2\\3&3\end{pmatrix}"),
    (r"\boxed{(-\infty, 1) \cup (2, \infty)}", r"(-\infty,1)\cup(2,\infty)"),
    (r"\boxed{(0,1) \cup (1, 2) \cup (3,4)}", r"(0,1)\cup(1,2)\cup(3,4)"),
    (r"\boxed{[1,2] \cup \{5\}}", r"[1,2]\cup\{5\}"),
    (r"\boxed{(1,100)}", "(1, 100)"),
    # peer misses fixed in session 2
    ("so the number is 10 which is 1,000.99m²", "1000.99"),
    (r"$0.04 \cdot 10000 = \boxed{400}$. Final Answer: The final answer is $10,808$.", "10808"),
    (r"We get $d = \frac{90}{n}$. Therefore there are 12 sequences.", "12"),
    (r'The final answer is \"$12 $ and $13 $\".', "12, 13"),
    (r"\boxed{4, 5}", "AB=4,CD=5"),
    (r"$(5,2),(7,2)$", "p=5,q=2;p=7,q=2"),
    ("$e$", r"$\text{e}$"),
    ("$(0,1)$", "$0<f(x)<1$"),
    (r"$\boxed{1,2}$", r"\boxed{1} papers and \boxed{2} bins"),
    ("$0$", r"$1 = \zzz = x = 0$"),
    (r"\boxed{(y, x) = (2, 1)}", r"(x, y) = (1, 2)"),
    ("C. x = 42", "C"),
]


@pytest.mark.parametrize("response, reference", FALSE_POSITIVES)
def test_false_positive_classes_fail(response, reference):
    result = check(response, reference)
    assert result["passed"] is False and result["reason"], result


@pytest.mark.parametrize("response, reference", MISSES)
def test_listed_misses_pass(response, reference):
    result = check(response, reference)
    assert result["passed"] is True and result["error"] is None, result


def test_negation_is_reported_as_such():
    assert check("The final answer is not 0.", "0")["reason"] == "the final answer is negated"


def test_unreadable_answer_is_a_fail_with_a_reason_through_the_worker():
    verdict = verify(r"\boxed{\frac{}{}}", "1")
    assert not verdict.passed and verdict.error is None and verdict.reason


_PIECES = ["\\boxed{", "}", "{", "\\frac", "\\sqrt", "\\cup", "(", ")", "[", "]", ",", "\\!", "1", "0", "x", "=",
           "\\neq", "\\in", "\\$", "$", ":", "/", "^", "\\infty", "-", "and", " ", "\\text{cm}", "\\begin{pmatrix}",
           "\\end{pmatrix}", "&", "\\\\", "Final Answer:", "not", "\\pm", "%", "!", "|", "f(x)", "\\{", "\\}"]


def test_fuzz_never_raises_and_never_errors_on_a_good_reference():
    rng = random.Random(14)
    for _ in range(300):
        response = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 14)))
        result = check(response, "(-\\infty, 1) \\cup (2, 3]")  # must return, never raise
        assert result["error"] is None and isinstance(result["passed"], bool)
        check("\\boxed{3}", response)  # an arbitrary reference: may be bad_reference, must not raise


@pytest.mark.parametrize("response, reference", [("\\boxed{\ud800}", "5"), ("Final answer: 5\udfff", "5"),
                                                 ("\\boxed{\x1b[31m5}", "5"), ("5", "\ud800")])
def test_verdict_text_is_always_valid_printable_utf8(response, reference):
    verdict = verify(response, reference, timeout=10.0)
    text = verdict.model_dump_json()  # lone surrogates from the response must not make this raise
    assert verdict.passed is False and "\x1b" not in text
    text.encode("utf-8")
