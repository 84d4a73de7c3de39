"""The stages of a job's data flow, in order: llm (config -> metered backend), sample, verify, select, datasets,
export, metrics, monitors, guards, summary, report; executors (local threads or Ray) run requests and checks.

What it is for: small stages that jobs string together; each reads what the stage before wrote to the run store.
What it does not do: decide the order of stages or when a job stops (`selfplay.jobs`).
"""

# The public face: these submodules (imported on use).
__all__ = ["datasets", "executors", "export", "guards", "judge_adapter", "llm", "metrics", "monitors", "report",
           "sample", "select", "summary", "verify"]
