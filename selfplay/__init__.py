"""selfplay: the loop. Tasks, run store, selection, datasets, metrics, budget report and the CLI.

This is the only package that imports `agents`, `verifiers` and `trainer` and converts between their
plain-data records.
"""

__version__ = "0.1.0"

# The public face: the version and the tiers (subpackages, imported on use), bottom to top.
__all__ = ["__version__", "core", "config", "tasks", "pipeline", "policy", "jobs", "servers", "cli", "progress",
           "tracking"]
