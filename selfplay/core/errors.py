"""Every error selfplay raises on purpose, in one tree, and the exit codes of the CLI.

What it is for: one place that says which failures are the user's input (exit 1 with a message naming
the culprit and the fix), which are deliberate stops (budget: exit 3; a server that went away mid-job:
exit 4, and the same command resumes; a loop that learned nothing: exit 5), and which a server of ours
answers as an HTTP error.

    SelfplayError                   the root: `except SelfplayError` catches every one of them
    ├── UserError                   bad input: a config, a task file, a flag, an endpoint unreachable at start (exit 1)
    │   ├── ScriptError             a mock server script that cannot be loaded (selfplay.servers.mock.script)
    │   └── TemplateError           a script rule's reply template (selfplay.servers.mock.templates; also a ValueError)
    ├── BudgetStop                  a budget cap stopped the job after everything in flight was recorded (exit 3)
    ├── EndpointLost                the model server went away mid-job (exit 4); start it, run the same command
    ├── NoImprovement               a loop that ran every round but learned nothing (exit 5; selfplay.jobs.loop)
    ├── RequestRefused              a request one of our servers answers with an HTTP error status
    │   ├── BadRequest              the mock's 400 with OpenAI's error kind (selfplay.servers.mock.requests)
    │   └── AdapterError            `selfplay serve`'s LoRA routes: 400 / 404 (selfplay.servers.serve.lora)
    └── DroppedConnection           a fault the mock injects: the connection is closed mid-body (servers.mock.app)

Errors of the leaf packages keep their own roots (`agents.llm.types.LLMError` with `BudgetExceeded`, the
ledger's refusal; `trainer.errors.TrainerError`; the verifiers' internal ones) and are turned into these
where selfplay meets them (a budget refusal becomes `BudgetStop`, a missing model a `UserError`).
What it does not do: catch bugs. An unexpected exception still prints its traceback.
"""

from __future__ import annotations

__all__ = ["EXIT_BUDGET", "EXIT_ENDPOINT_LOST", "EXIT_INCOMPLETE", "EXIT_OK", "EXIT_USAGE", "EXIT_USER_ERROR", "BudgetStop",
           "EndpointLost", "RequestRefused", "SelfplayError", "UserError"]

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_USAGE = 2  # argparse's own code for bad flags
EXIT_BUDGET = 3
EXIT_ENDPOINT_LOST = 4
# 5 is the loop's NoImprovement (selfplay.jobs.loop)
EXIT_INCOMPLETE = 6  # `selfplay generate` ended with tasks whose samples failed for good while the server answered


class SelfplayError(Exception):
    """The root of every error selfplay raises on purpose; `exit_code` is what the CLI returns for it."""

    exit_code = EXIT_USER_ERROR


class UserError(SelfplayError):
    """Bad input from the user: a config, a task file, a flag, an endpoint unreachable at start.

    The message must name the culprit (file and line where there is one) and say how to fix it.
    """

    exit_code = EXIT_USER_ERROR


class BudgetStop(SelfplayError):
    """A budget cap stopped the job after everything in flight was recorded."""

    exit_code = EXIT_BUDGET


class EndpointLost(SelfplayError):
    """The model server answered at the start but went away mid-job; what was done is recorded.

    Start the server again and run the same command: the job resumes where it stopped.
    """

    exit_code = EXIT_ENDPOINT_LOST


class RequestRefused(SelfplayError):
    """A request one of our HTTP servers refuses: answered with its `status` and `message`, never a traceback."""

    status: int = 400
    message: str = ""
