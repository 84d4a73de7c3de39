"""Expected values and wrappers around candidate values, evaluated where no candidate code ever runs.

What it is for: the harness (`harness.check_asserts`) calls
- `pure_values(pool, splits, memory_mb)` BEFORE the candidate runs: every "pure" leaf of the tests
  (`heapq.nsmallest(2, [5, 1, 3])`, `sys.maxsize`, `list(range(3))`), cached by its text; one that does
  not evaluate to plain data is a bad test (BadTest: the verifier cannot judge, whoever the candidate);
- `wrapper_values(pool, splits, slots, results, memory_mb)` AFTER it: every "trusted" leaf
  (`math.isinf(__leaf_0)`, `np.allclose(__leaf_0, [1, 2])`, `__leaf_0.isupper()`), with the candidate's
  decoded plain values bound to the placeholders. An error there (a wrong type, a timeout) is the
  candidate's failed test, never a verifier error.
Both run on the pool's trusted worker (`role="expected"`: its own zygote and uid, sandboxed because
tests may be model-written, never given candidate code), with the real standard-library modules and
numpy (as `np`) imported fresh; numpy results come back as `.tolist()` / `.item()`.

What it does NOT do: judge (the parent does, strictly typed), or hash candidate values in the parent
(they are re-encoded as plain JSON and rebuilt as real containers only on the trusted worker).
"""

from __future__ import annotations

import ast
from collections import OrderedDict
from typing import Any

from verifiers.code.pool import SandboxPool
from verifiers.code.testsplit import LEAF_PREFIX, MODULE_ALIASES, BadTest, SplitTest
from verifiers.code.values import to_plain

PURE_IMPORTS = ("math", "cmath", "string", "fractions", "decimal", "itertools", "collections")
TRUSTED_TIMEOUT_S = 10.0
PURE_CACHE_SIZE = 4096
_pure_cache: OrderedDict[str, Any] = OrderedDict()


def pure_values(pool: SandboxPool, splits: list[SplitTest], memory_mb: int) -> dict[str, Any]:
    """Value of every pure leaf (cached); BadTest if one is not plain data."""
    wanted = sorted({leaf for s in splits for leaf, kind in zip(s.leaves, s.kinds) if kind == "pure"})
    found = {leaf: _pure_cache[leaf] for leaf in wanted if leaf in _pure_cache}
    missing = [leaf for leaf in wanted if leaf not in found]
    if not missing:
        return found
    modules = set().union(*(s.modules for s in splits))
    results, problem = _evaluate(pool, missing, {}, modules, memory_mb)
    for i, leaf in enumerate(missing):
        outcome = results.get(i, ("error", problem or "no value"))
        if outcome[0] != "value":
            raise BadTest(f"expected-value expression {leaf!r} did not evaluate to plain data ({outcome[1]})")
        found[leaf] = _pure_cache[leaf] = outcome[1]
        if len(_pure_cache) > PURE_CACHE_SIZE:
            _pure_cache.popitem(last=False)
    return found


def wrapper_values(pool: SandboxPool, splits: list[SplitTest], slots: list[list[tuple[str, Any]]],
                   results: dict, memory_mb: int) -> dict[tuple[int, int], tuple[str, Any]]:
    """(test, leaf) -> ("value", v) | ("error", why) for every trusted leaf whose candidate values all
    arrived (the others are judged by their missing candidate value)."""
    expressions, inputs, keys, modules = [], {}, [], set()
    for t, split in enumerate(splits):
        for i, kind in enumerate(split.kinds):
            if kind != "trusted":
                continue
            expression, deps = _bind(split.leaves[i], t)
            values = [results.get(slots[t][j][1]) for j in deps]
            if any(v is None or v[0] != "value" for v in values):
                continue
            inputs.update((f"__v{t}_{j}", to_plain(v[1])) for j, v in zip(deps, values))
            expressions.append(expression)
            keys.append((t, i))
            modules |= split.modules
    if not expressions:
        return {}
    got, problem = _evaluate(pool, expressions, inputs, modules, memory_mb)
    why = f"trusted evaluation gave no value ({problem or 'it did not finish'})"
    return {key: got.get(k, ("error", why)) for k, key in enumerate(keys)}


def _bind(expression: str, test: int) -> tuple[str, list[int]]:
    """Rename the placeholders of one test's trusted leaf to names unique in the job."""
    tree = ast.parse(expression, mode="eval")
    deps = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id.startswith(LEAF_PREFIX):
            index = int(node.id[len(LEAF_PREFIX):])
            deps.append(index)
            node.id = f"__v{test}_{index}"
    return ast.unparse(tree), sorted(set(deps))


def _evaluate(pool: SandboxPool, expressions: list[str], inputs: dict, modules: set[str],
              memory_mb: int) -> tuple[dict, str | None]:
    from verifiers.code.harness import PROGRAM_ERROR, make_job, parse_results, run_job
    imports = "".join(f"import {MODULE_ALIASES.get(m, m)} as {m}\n" for m in sorted(set(PURE_IMPORTS) | modules))
    job = make_job(pool, "asserts", imports, TRUSTED_TIMEOUT_S, max(memory_mb, 512), leaves=expressions,
                   inputs=inputs)
    runs, _ = run_job(pool, job, TRUSTED_TIMEOUT_S, role="expected")  # SandboxError: the verifier's fault
    run = runs[0]
    results, problem = parse_results(run["results"], len(expressions), run["results_truncated"])
    if PROGRAM_ERROR in results:  # an import failed: the test needs a module this sandbox lacks
        raise BadTest(f"the test needs a module the sandbox cannot import ({results[PROGRAM_ERROR][1]})")
    if run["timed_out"]:
        problem = problem or "timed out"
    return results, problem or (None if run["exit_code"] == 0 else f"exit code {run['exit_code']}")
