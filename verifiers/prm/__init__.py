"""Process reward models: a score for every step of a solution, aggregated into a Verdict.

Public API:
  split_steps(text, separator=None), conversation_steps(messages)     the step rule shared with `agents`
  aggregate(scores, method), steps_verdict(...), AGGREGATIONS         min / product / last / mean
  LLMPRM(llm, aggregation="min")                                       LLM-as-PRM (a judge grades each step)
  ModelPRM.load(dir) (in `verifiers.prm.model`)                         a trained scalar-head PRM checkpoint
  hard_label, soft_label, step_labels, prm_row                          Math-Shepherd labels from rollout verdicts

What this package does not do: train PRMs (`trainer.prm`), or label steps automatically (the `selfplay
prm-label` job samples completions from each step prefix and checks them with the math verifier).
`verifiers.prm.model` imports torch and transformers when used, never at import time of this package.
"""

from verifiers.prm.aggregate import AGGREGATIONS, DEFAULT_AGGREGATION, aggregate, steps_verdict
from verifiers.prm.labels import hard_label, prm_row, soft_label, step_labels
from verifiers.prm.llm_prm import LLMPRM, step_grades_schema
from verifiers.prm.steps import conversation_steps, split_steps

__all__ = ["AGGREGATIONS", "DEFAULT_AGGREGATION", "LLMPRM", "aggregate", "conversation_steps", "hard_label",
           "prm_row", "soft_label", "split_steps", "step_grades_schema", "step_labels", "steps_verdict"]
