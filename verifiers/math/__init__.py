"""Math answer verification: is the final answer in a model response equal to a reference?

Public API:
  verify(response, reference, *, timeout=5.0, finish_reason=None) -> Verdict   (blocking; any thread)
  averify(response, reference, *, timeout=5.0, finish_reason=None) -> Verdict  (asyncio)
  (`finish_reason`: the completion's, e.g. "stop" / "length"; None = unknown. A truncated completion
  passes only with an answer it committed to before the cut: a box or a closed "the answer is".)
  MathVerifier(timeout=..., rel_tol=...)                       (a configured, callable verifier)

Modules: `extract` (find the answer in the response), `conclusion` (is it committed?), `equation`
(`expression = value` answers), `normalize` (string clean-up), `textparse`
(safe plain-text parser), `parse` (to sympy), `numeric` and `compare` (equality rules), `check`
(the whole pipeline, run in a worker), `worker` (hard time limits), `verifier` (Verdicts).

What this package does not do: grade reasoning steps (that is the PRM), or accept an answer it
cannot prove equal: when in doubt it says "wrong", and when it cannot decide it says `error`.
"""

from verifiers.math.verifier import VERSION, MathVerifier, averify, verify

__all__ = ["VERSION", "MathVerifier", "averify", "verify"]
