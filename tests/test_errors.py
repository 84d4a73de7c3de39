"""One error hierarchy per package: every exception class selfplay defines descends from `SelfplayError` (the
trainer's from `TrainerError`); a budget stop is caught by its own type, so any other failure (a SQLite error)
is never reported as "budget"; a server lost mid-job exits 4 with one message; the packages' faces have `__all__`."""

from __future__ import annotations

import ast
import asyncio
import importlib
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest

from agents.llm.types import BudgetExceeded
from selfplay.cli import main
from selfplay.core.errors import EXIT_ENDPOINT_LOST, EndpointLost, SelfplayError, UserError

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_ROOTS = {"BaseException", "Exception", "ValueError", "RuntimeError", "TypeError", "KeyError", "OSError",
                 "LookupError", "ArithmeticError"}


def exception_classes(package: str) -> list[tuple[str, str, list[str]]]:
    """(module path, class name, base names) of every class in `package` whose bases include an exception."""
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
                found.append((str(path.relative_to(ROOT)), node.name, bases))
    names = {name for _, name, _ in found}
    errors, changed = {n for _, n, b in found if set(b) & BUILTIN_ROOTS}, True
    while changed:  # classes deriving from an exception class of the package are exceptions too
        changed = False
        for _, name, bases in found:
            if name not in errors and set(bases) & errors & names:
                errors.add(name)
                changed = True
    return [(p, n, b) for p, n, b in found if n in errors]


@pytest.mark.parametrize("package, root, home", [("selfplay", "SelfplayError", "selfplay/core/errors.py"),
                                                 ("trainer", "TrainerError", "trainer/errors.py")])
def test_one_root_per_package(package, root, home):
    classes = exception_classes(package)
    roots = [(path, name) for path, name, bases in classes if bases and bases[0] in BUILTIN_ROOTS]
    assert roots == [(home, root)], "every other exception class must descend from the package's root"
    for path, name, _ in classes:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        cls = getattr(module, name)
        assert issubclass(cls, getattr(importlib.import_module(home.removesuffix(".py").replace("/", ".")), root))


def test_the_hierarchy_drawn_in_the_docstring_is_the_real_one():
    doc = importlib.import_module("selfplay.core.errors").__doc__
    for path, name, _ in exception_classes("selfplay"):
        assert name in doc, f"{name} ({path}) is missing from selfplay.core.errors' drawing"


def test_the_budget_stop_of_generate_is_its_own_type_and_a_sqlite_failure_is_not_budget():
    from selfplay.jobs.generate import GenerateJob, JobState

    class Ledger:
        def __init__(self, exc):
            self.exc = exc

        def check_open(self):
            raise self.exc

    async def worker(exc):
        state = JobState(total_tasks=1)
        queue: asyncio.Queue = asyncio.Queue()
        queue.put_nowait(SimpleNamespace(id="t0"))
        await GenerateJob._worker(None, queue, None, Ledger(exc), state, None)
        return state

    assert asyncio.run(worker(BudgetExceeded("cap", cap="usd"))).stopped_reason == "budget"
    with pytest.raises(sqlite3.OperationalError):
        asyncio.run(worker(sqlite3.OperationalError("disk I/O error")))


def test_the_budget_stop_of_prm_label_is_its_own_type_and_a_sqlite_failure_is_not_budget():
    from selfplay.jobs.prm_label import _open

    def ledger(exc):
        def check_open():
            if exc:
                raise exc
        return SimpleNamespace(check_open=check_open)

    assert _open(ledger(None)) and not _open(ledger(BudgetExceeded("cap", cap="usd")))
    with pytest.raises(sqlite3.OperationalError):
        _open(ledger(sqlite3.OperationalError("database is locked")))


def test_a_server_lost_mid_job_exits_4_with_one_message(monkeypatch, capsys):
    import selfplay.cli.report as report

    def lost(_args):
        raise EndpointLost("GET http://127.0.0.1:9/v1/models: cannot list the served models: ConnectError; "
                           "is the server running at http://127.0.0.1:9? Start it and run the same command")
    monkeypatch.setattr(report, "run", lost)
    assert main(["report", "anywhere"]) == EXIT_ENDPOINT_LOST == 4
    err = capsys.readouterr().err
    assert err.startswith("stopped: GET http://127.0.0.1:9/v1/models") and "Traceback" not in err


def test_every_selfplay_error_is_one_message_with_its_exit_code(monkeypatch, capsys):
    import selfplay.cli.report as report
    from selfplay.servers.mock.templates import TemplateError

    def bad(_args):
        raise TemplateError("{add:1} references group 1, which the rule's regex lacks")
    monkeypatch.setattr(report, "run", bad)
    assert main(["report", "anywhere"]) == 1
    assert capsys.readouterr().err.startswith("error: {add:1}")
    assert issubclass(TemplateError, ValueError) and issubclass(UserError, SelfplayError)


PUBLIC = ["selfplay", "selfplay.core", "selfplay.config", "selfplay.tasks", "selfplay.pipeline", "selfplay.policy",
          "selfplay.jobs", "selfplay.servers", "trainer"]


@pytest.mark.parametrize("name", PUBLIC)
def test_each_package_face_declares_all_and_every_name_resolves(name):
    module = importlib.import_module(name)
    assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__"
    for item in module.__all__:
        if not hasattr(module, item):
            importlib.import_module(f"{name}.{item}")  # a submodule named by the face
