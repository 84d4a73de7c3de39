"""AI-feedback judges (RLAIF / constitutional-AI style) that resist being gamed by the text they judge.

Public API:
  PointwiseJudge(llm, rubric=... | principles=[...], pass_threshold=7)   grade 1-10 -> Verdict
  PairwiseJudge(llm, ...).acompare(a, b, prompt=...)                      both orders -> PairwiseVerdict
  PointwisePanel / PairwisePanel, aggregate_scores, majority_side        several judges, one verdict
  JudgeLLM                                                                the protocol `llm` must follow
  ask(llm, messages, Schema) / AskConfig                                  one structured question (used by the PRM)
  parse_final(text, Schema)                                               the tolerant, strict-where-it-matters parser

Modules: `llm` (protocol, mode choice), `schema` (output models), `parse`, `fence` (untrusted text as
data), `prompts`, `structured` (ask + repair), `pointwise`, `pairwise`, `panel`.
What this package does not do: import `agents` or send requests itself. `selfplay.judge_adapter` turns an
`agents` LLM (metered: priced and budgeted) into a `JudgeLLM`.
"""

from verifiers.judge.llm import JudgeLLM, pick_mode, run_blocking
from verifiers.judge.pairwise import PairwiseJudge, PairwiseVerdict, combine_orders, flip_rate, unswap
from verifiers.judge.panel import PairwisePanel, PointwisePanel, aggregate_scores, majority_side
from verifiers.judge.parse import parse_final
from verifiers.judge.pointwise import PointwiseJudge, grade_to_score
from verifiers.judge.schema import PairwiseJudgment, PointwiseJudgment
from verifiers.judge.structured import Answer, AskConfig, ask

__all__ = [
    "Answer", "AskConfig", "JudgeLLM", "PairwiseJudge", "PairwiseJudgment", "PairwisePanel", "PairwiseVerdict",
    "PointwiseJudge", "PointwiseJudgment", "PointwisePanel", "aggregate_scores", "ask", "combine_orders",
    "flip_rate", "grade_to_score", "majority_side", "parse_final", "pick_mode", "run_blocking", "unswap",
]
