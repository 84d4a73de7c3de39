"""Verifiers: decide whether a candidate answer is right, and how right.

Subpackages: `math` (sympy-based answer checks), `code` (sandboxed execution), `prm` (process reward
model), `judge` (AI-feedback judge), plus `compose` (weighted sums, gates, batch API, verdict cache)
and `reward` (TRL-style reward-function adapter). Every verifier is a plain callable returning a
`Verdict`.

This package imports nothing else of ours (not `agents`, `trainer` or `selfplay`) and never imports
torch at module import time, so it stays usable alone (e.g. as a TRL reward function).
"""

from verifiers.verdict import Verdict

__all__ = ["Verdict"]
