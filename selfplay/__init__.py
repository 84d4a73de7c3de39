"""selfplay: the loop. Tasks, run store, selection, datasets, metrics, budget report and the CLI.

This is the only package that imports `agents`, `verifiers` and `trainer` and converts between their
plain-data records.
"""

__version__ = "0.1.0"
