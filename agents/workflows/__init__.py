"""Agentic workflows that turn a prompt into K candidate trajectories on any `LLM` backend.

`direct`, `self_refine`, `tool_use`, `feedback`: each a small module, all behind one entry point,
`registry.run_workflow(name, llm, task_id, messages, params, k, options=..., check=..., tool=...)`.
`adaptive` decides how many more samples a task gets, `dedup` groups identical answers so a verifier
runs once per group, `stats` accounts per workflow. Tools and checks are injected callables: `agents`
imports nothing else of ours.
"""

from agents.workflows.adaptive import AdaptiveK, next_batch, samples_per_solved
from agents.workflows.common import CheckResult
from agents.workflows.dedup import DedupReport, answer_key, dedup_report, near_duplicates, verification_groups
from agents.workflows.registry import WORKFLOWS, budget_exhausted, run_workflow, validate_options
from agents.workflows.stats import WorkflowStats, workflow_stats
from agents.workflows.trajectory import Trajectory

__all__ = ["Trajectory", "CheckResult", "WORKFLOWS", "run_workflow", "validate_options", "budget_exhausted",
           "AdaptiveK", "next_batch", "samples_per_solved", "DedupReport", "answer_key", "dedup_report",
           "near_duplicates", "verification_groups", "WorkflowStats", "workflow_stats"]
