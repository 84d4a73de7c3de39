"""Errors the user can act on, and the exit codes of the CLI.

What it is for: one place that says which failures are the user's input (exit 1 with a message naming
the culprit and the fix) and which are deliberate stops (budget: exit 3).
What it does not do: catch bugs. An unexpected exception still prints its traceback.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_USAGE = 2  # argparse's own code for bad flags
EXIT_BUDGET = 3


class UserError(Exception):
    """Bad input from the user: a config, a task file, a flag, an unreachable endpoint.

    The message must name the culprit (file and line where there is one) and say how to fix it.
    """

    exit_code = EXIT_USER_ERROR


class BudgetStop(Exception):
    """A budget cap stopped the job after everything in flight was recorded."""

    exit_code = EXIT_BUDGET
