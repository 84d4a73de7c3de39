"""Benchmark: `verifiers.math` against the `math-verify` package, same cases, same run.

What it measures, on three labelled sets (response/reference/expected): the regression set of issue 22
tests/data/math_regression_cases.jsonl (verl, lm-eval minerva_math, prm800k, simple-evals, AReaL, SkyRL,
open-instruct and TRL tests/scorers, labelled by the mathematics; rows may carry the completion's
`finish_reason`, which ours is given and math-verify has no input for), the peer-derived set
tests/data/math_peer_cases.jsonl (Math-Verify's published tests, labelled by the mathematics, plus
issue 14's adversarial classes) and the first-wave set tests/data/math_cases.jsonl:
accuracy, false positives (wrong answers accepted), false negatives, verifier errors and checks/s,
for both verifiers called one check at a time from one thread, plus our batch API. Then a few
adversarial inputs (power towers, huge factorials) with a 1 s limit: wall time per check and
what each verifier reports. math-verify runs with its documented API
(`parse(...)`, `verify(gold, pred)`), the gold wrapped in `$...$`; its adversarial checks run in
a subprocess so that a hang cannot stall the bench.

What it does not do: tune either verifier, or measure parse-cache effects separately (each
verifier sees every case once; both keep their own internal caches).

Run: `python bench/bench_math_verify.py [--sets all|regression|peer|first-wave] [--no-adversarial]` (needs
the `bench` extra: math-verify). The regression and peer-derived sets are also split by source, same run.

`--solutions FILE.jsonl` (rows with `solution` and `answer`, e.g. MATH-500's test.jsonl) measures the cost
and the effect of issue 22's commit rule on complete, human-written solutions: each solution with its
`\\boxed{}` unwrapped (so the fallback must find the concluding value) is checked with the rule and with
the rule switched off (in-process `check`, the rule's two functions replaced by no-ops), and each solution
cut at a random point before its box (a truncated rollout; seed 22) is checked with finish_reason unknown
and "length". Runs alone (no other set, no math-verify).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CASES_PATH = ROOT / "tests" / "data" / "math_cases.jsonl"
PEER_CASES_PATH = ROOT / "tests" / "data" / "math_peer_cases.jsonl"
REGRESSION_CASES_PATH = ROOT / "tests" / "data" / "math_regression_cases.jsonl"
LIMIT_S = 1.0
ADVERSARIAL = [
    (r"\boxed{9^{9^{9^{9}}}}", "1"),
    (r"\boxed{2}", r"7^{7^{7^{7}}}"),
    (r"\boxed{(10^{12})!}", "5"),
    (r"\boxed{3^{10^{8}}}", "1"),
]


def load_cases(path: Path = CASES_PATH) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_ours(cases: list[dict]) -> tuple[list[bool | None], float]:
    from verifiers.math import verify

    verify(r"\boxed{1}", "1")  # start the worker outside the clock (one-off process start-up)
    started = time.perf_counter()
    results = []
    for case in cases:
        verdict = verify(case["response"], case["reference"], finish_reason=case.get("finish_reason"))
        results.append(None if verdict.error else verdict.passed)
    return results, time.perf_counter() - started


def run_ours_batch(cases: list[dict]) -> float:
    from verifiers.compose import verify_batch
    from verifiers.math import MathVerifier
    from verifiers.math.worker import WorkerPool

    workers = 2
    pool = WorkerPool("verifiers.math.check:check", warmup="verifiers.math.check:warm_up", max_workers=workers)
    verifier = MathVerifier(pool=pool)  # fresh processes: no parse cache carried over from run_ours
    verify_batch(verifier, [{"response": r"\boxed{1}", "reference": "1"}] * workers, max_concurrency=workers)
    items = [{"response": c["response"], "reference": c["reference"], "finish_reason": c.get("finish_reason")}
             for c in cases]
    started = time.perf_counter()
    verify_batch(verifier, items, max_concurrency=workers)
    elapsed = time.perf_counter() - started
    pool.close()
    return elapsed


def math_verify_check(response: str, reference: str, limit: int = 5) -> bool:
    from math_verify import parse, verify

    readings = [reference, f"${reference}$"] if ("$" in reference or "boxed" in reference) else \
        [f"${reference}$", reference]  # peer cases carry Math-Verify's own gold format
    gold = parse(readings[0], parsing_timeout=limit) or parse(readings[1], parsing_timeout=limit)
    return bool(verify(gold, parse(response, parsing_timeout=limit), timeout_seconds=limit))


def run_math_verify(cases: list[dict]) -> tuple[list[bool | None], float]:
    math_verify_check(r"\boxed{1}", "1")
    started = time.perf_counter()
    results = []
    for case in cases:
        try:
            results.append(math_verify_check(case["response"], case["reference"]))
        except Exception:
            results.append(None)
    return results, time.perf_counter() - started


def _source_groups(cases: list[dict]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for index, case in enumerate(cases):
        source = case.get("source", "")
        first_word = (source.split() or [""])[0]
        group = (f"ported: {first_word}" if first_word in _REGRESSION_SOURCES
                 else "ours: issue 22 classes" if source.startswith("issue 22") else
                 "ported: Math-Verify tests/" if source.startswith("Math-Verify tests")
                 else "ported: Math-Verify issues (reported FPs)" if source.startswith("Math-Verify issue")
                 else "ported: NeMo-Skills tests/" if source.startswith("NeMo-Skills")
                 else "ours: issue 14 classes, attacks, fixed misses" if source else "")
        if group:
            groups.setdefault(group, []).append(index)
    return groups


_REGRESSION_SOURCES = ("verl", "lm-eval", "prm800k", "simple-evals", "AReaL", "SkyRL", "open-instruct", "TRL")


def score(cases: list[dict], results: list[bool | None]) -> dict:
    right = sum(r == c["expected"] for c, r in zip(cases, results))
    return {"accuracy": right / max(len(cases), 1),
            "false_pos": sum(r is True and not c["expected"] for c, r in zip(cases, results)),
            "false_neg": sum(r is False and c["expected"] for c, r in zip(cases, results)),
            "errors": sum(r is None for r in results)}


def adversarial_ours() -> list[tuple[float, str]]:
    from verifiers.math import verify

    rows = []
    for response, reference in ADVERSARIAL:
        started = time.perf_counter()
        verdict = verify(response, reference, timeout=LIMIT_S)
        rows.append((time.perf_counter() - started, verdict.error or ("pass" if verdict.passed else "wrong")))
    return rows


def adversarial_math_verify() -> list[tuple[float, str]]:
    rows = []
    for response, reference in ADVERSARIAL:
        try:
            out = subprocess.run([sys.executable, __file__, "--math-verify-one", response, reference],
                                 capture_output=True, text=True, timeout=30 * LIMIT_S)
            outcome, _, seconds = out.stdout.strip().splitlines()[-1].partition("|")
            rows.append((float(seconds), outcome))
        except subprocess.TimeoutExpired:
            rows.append((30 * LIMIT_S, "HUNG (killed)"))
        except (IndexError, ValueError):
            rows.append((float("nan"), "crashed"))
    return rows


def unbox(text: str) -> str:
    """`... = \\boxed{24}$.` -> `... = 24$.` (every box unwrapped, brace-matched)."""
    from verifiers.math.extract import find_boxed

    for content in find_boxed(text):
        text = text.replace(f"\\boxed{{{content}}}", content, 1)
    return text


def commit_rule_on_solutions(path: Path) -> None:
    """Recall cost of the commit rule on unboxed complete solutions, and false passes on truncated ones."""
    import random

    import verifiers.math.extract as extract
    from verifiers.math.check import check

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with_rule = [check(unbox(r["solution"]), r["answer"]) for r in rows]
    rule = extract.cut_off, extract.presented_as_conclusion
    extract.cut_off, extract.presented_as_conclusion = (lambda *a, **k: False), (lambda *a, **k: "")
    try:
        without = [check(unbox(r["solution"]), r["answer"]) for r in rows]
    finally:
        extract.cut_off, extract.presented_as_conclusion = rule
    lost = sum(w["passed"] < wo["passed"] for w, wo in zip(with_rule, without))
    fallback = sum(wo["passed"] and wo["details"].get("source") in ("last_math", "last_number") for wo in without)
    print(f"\n== commit rule on {len(rows)} complete solutions from {path.name}, boxes unwrapped")
    print(f"passed with the rule {sum(w['passed'] for w in with_rule)}, without it {sum(w['passed'] for w in without)}: "
          f"{lost} correct conclusions lost ({lost / max(fallback, 1):.1%} of the {fallback} the fallback graded right)")
    rng, unknown, length, cut = random.Random(22), 0, 0, 0
    for row in rows:
        box = row["solution"].rfind("\\boxed")
        if box > 40:
            text = row["solution"][: rng.randint(int(box * 0.4), box)]
            cut += 1
            unknown += check(text, row["answer"])["passed"]
            length += check(text, row["answer"], finish_reason="length")["passed"]
    print(f"cut before their box: {cut}; passed with finish_reason unknown {unknown}, with 'length' {length} "
          "(a pass here needs an answer committed before the cut, e.g. an earlier box)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", choices=("all", "regression", "peer", "first-wave"), default="all",
                        help="which labelled set(s) to run (default: all, the issue-22 regression set first)")
    parser.add_argument("--no-adversarial", action="store_true", help="skip the 1 s power-tower/factorial inputs")
    parser.add_argument("--solutions", type=Path, help="JSONL of solution/answer rows: measure the commit rule only")
    args = parser.parse_args(argv)
    if args.solutions:
        commit_rule_on_solutions(args.solutions)
        return
    sets = (("regression", "issue-22 regression set (new sources)", REGRESSION_CASES_PATH),
            ("peer", "peer-derived set", PEER_CASES_PATH), ("first-wave", "first-wave labelled set", CASES_PATH))
    for key, title, path in sets:
        if args.sets in ("all", key):
            compare_on(title, load_cases(path))
    if args.no_adversarial:
        return
    print(f"\nadversarial inputs, limit {LIMIT_S:g}s (seconds for the check itself, outcome):")
    for (response, reference), mine, other in zip(ADVERSARIAL, adversarial_ours(), adversarial_math_verify()):
        print(f"  {response + ' vs ' + reference:<42} ours {mine[0]:5.2f}s {mine[1]:<8} "
              f"math-verify {other[0]:5.2f}s {other[1]}")


def compare_on(title: str, cases: list[dict]) -> None:
    negatives = sum(not c["expected"] for c in cases)
    truncated = sum(c.get("finish_reason") == "length" for c in cases)
    print(f"\n== {title}: {len(cases)} cases ({len(cases) - negatives} positive, {negatives} negative"
          + (f"; {truncated} truncated, finish_reason 'length'" if truncated else "") + ")")
    ours, ours_s = run_ours(cases)
    theirs, theirs_s = run_math_verify(cases)
    batch_s = run_ours_batch(cases)
    rows = [("selfplay verifiers.math", score(cases, ours), len(cases) / ours_s),
            ("math-verify", score(cases, theirs), len(cases) / theirs_s)]
    print(f"\n{'verifier':<26}{'accuracy':>9}{'false+':>8}{'false-':>8}{'errors':>8}{'checks/s':>10}")
    for name, s, rate in rows:
        print(f"{name:<26}{s['accuracy']:>9.3f}{s['false_pos']:>8}{s['false_neg']:>8}{s['errors']:>8}{rate:>10.0f}")
    print(f"{'selfplay, 2-worker batch':<26}{'':>33}{len(cases) / batch_s:>10.0f}")
    groups = _source_groups(cases)
    if len(groups) > 1:  # the same run, split by where the cases come from (the ported part is the peer's own)
        print(f"\n{'by source':<44}{'cases':>6}{'ours acc':>10}{'ours false+':>12}{'m-v acc':>9}{'m-v false+':>11}")
        for group, indexes in groups.items():
            part = [cases[i] for i in indexes]
            mine, other = score(part, [ours[i] for i in indexes]), score(part, [theirs[i] for i in indexes])
            print(f"{group:<44}{len(part):>6}{mine['accuracy']:>10.3f}{mine['false_pos']:>12}"
                  f"{other['accuracy']:>9.3f}{other['false_pos']:>11}")
    (ours_score, ours_rate), (theirs_score, theirs_rate) = [(s, r) for _, s, r in rows]
    print(f"\nratios ours/math-verify: accuracy x{ours_score['accuracy'] / theirs_score['accuracy']:.3f}, "
          f"checks/s x{ours_rate / theirs_rate:.1f} (batch x{len(cases) / batch_s / theirs_rate:.1f})")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--math-verify-one":
        math_verify_check(r"\boxed{1}", "1")  # imports and warm-up outside the clock, as for ours
        began = time.perf_counter()
        passed = math_verify_check(sys.argv[2], sys.argv[3], limit=int(LIMIT_S))
        print(f"{'pass' if passed else 'wrong (no error reported)'}|{time.perf_counter() - began:.3f}")
    else:
        main()
