"""Issue 26: a model server that dies mid-`selfplay generate` stops the job with exit 4, and the same command resumes.

The mock server runs as a subprocess and is killed (SIGKILL) once the first candidates are in the run store. Before,
the job went on failing every task, then exited 0 with `stopped_reason "done"`, every task counted complete and the
connection errors reported again by every later resume. Now: exit 4, `stopped_reason "endpoint_lost"`, one message
and no traceback, only whole tasks counted complete; restarted on the same port, the same command completes every
task, asks the server only for what was not stored (no request paid twice) and reports no error of its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from agents.llm.types import LLMError
from selfplay.core.errors import EXIT_ENDPOINT_LOST
from selfplay.jobs.generate import EndpointWatch
from selfplay.servers.testing import MockServer
from tests.gen_helpers import cli, popen, read_summary, stored_candidates, write_job

TASKS, K = 240, 4


class PortServer(MockServer):
    """The mock as a subprocess on a chosen port (0: a free one), to restart it where the job expects it."""

    def __init__(self, port: int = 0, **options) -> None:
        super().__init__(subprocess=True, **options)
        self.fixed_port = port

    def command(self) -> list[str]:
        cmd = super().command()
        cmd[cmd.index("--port") + 1] = str(self.fixed_port)
        return cmd


def _whole_tasks(out: Path) -> int:
    """Tasks with all K samples stored without error."""
    with sqlite3.connect(out / "run.db") as db:
        return db.execute("SELECT COUNT(*) FROM (SELECT task_id FROM candidates WHERE error IS NULL "
                          "GROUP BY task_id HAVING COUNT(*) = ?)", (K,)).fetchone()[0]


def _paid_twice(out: Path) -> int:
    """Request keys settled with a reply more than once (each is a request paid twice)."""
    with sqlite3.connect(out / "run.db") as db:
        return db.execute("SELECT COUNT(*) FROM (SELECT key FROM reservations WHERE status = 'settled' "
                          "AND error IS NULL GROUP BY key HAVING COUNT(*) > 1)").fetchone()[0]


def _job(tmp: Path, base_url: str) -> Path:
    config = write_job(tmp, base_url, tasks=TASKS, k=K, concurrency=8, timeout_s=5.0)
    text = config.read_text()
    config.write_text(text.replace("max_attempts = 8", "max_attempts = 3"))  # a dead server fails in ~1 s
    return config


def _run_until_killed(server: MockServer, config: Path, out: Path):
    """`selfplay generate` in a subprocess; the server is killed once the first candidates are stored."""
    process = popen("generate", "--config", str(config), "--out", str(out), "--no-progress")
    try:
        deadline = time.monotonic() + 120
        while stored_candidates(out) < 2 * K and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        server.kill()
        stdout, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, stdout, stderr


def test_a_server_killed_mid_generate_stops_with_exit_4_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "out"
    first = PortServer(latency_ms=60).start()
    try:
        port = first.port
        config = _job(tmp_path, first.base_url)
        code, _, stderr = _run_until_killed(first, config, out)
    finally:
        first.stop()

    assert code == EXIT_ENDPOINT_LOST, stderr[-3000:]
    assert "Traceback" not in stderr
    assert f"the model server at http://127.0.0.1:{port}/v1 stopped answering after" in stderr
    assert "run the same command to resume" in stderr
    lost = read_summary(out)
    assert lost["stopped_reason"] == "endpoint_lost" and "stopped answering" in lost["endpoint_lost"]
    assert lost["errors"].get("connection", 0) > 0  # this session's failed samples
    whole = _whole_tasks(out)
    assert 0 < whole < TASKS, "the kill must land mid-job"
    assert lost["tasks_complete"] == whole  # a task with failed samples is not complete
    assert lost["candidates"] < TASKS * K

    second = PortServer(port, latency_ms=0).start()
    try:
        again = cli("generate", "--config", str(config), "--out", str(out), "--no-progress", timeout=300)
        stats = second.stats()
    finally:
        second.stop()

    assert again.returncode == 0, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    done = read_summary(out)
    assert done["stopped_reason"] == "done" and done["endpoint_lost"] is None
    assert done["tasks_complete"] == TASKS and _whole_tasks(out) == TASKS and done["candidates"] == TASKS * K
    assert done["errors"] == {} and done["errors_unresolved"] == {}  # the resumed session had no error
    assert done["errors_all_sessions"] == lost["errors_all_sessions"] == lost["errors"]  # the old ones, named so
    # nothing paid twice: one request per task over both sessions, the restarted server asked only for the rest
    assert _paid_twice(out) == 0
    assert done["requests"] == TASKS
    assert stats["by_endpoint"]["chat.completions"] == TASKS - lost["requests"] == done["session_requests"]
    assert stats["duplicate_replies"] == 0


class _Backend:
    def __init__(self, error: LLMError | None = None) -> None:
        self.error, self.probes = error, 0

    async def list_models(self) -> list[str]:
        self.probes += 1
        if self.error is not None:
            raise self.error
        return ["mock-model"]


@pytest.mark.parametrize("error, gone", [(None, False), (LLMError("not_found", "404"), False),
                                         (LLMError("server_error", "503"), False),
                                         (LLMError("connection", "refused"), True),
                                         (LLMError("timeout", "timed out"), True)])
def test_only_a_probe_that_cannot_connect_means_the_endpoint_is_lost(error, gone):
    """Any answer (an HTTP error too) means the server is there: a task's failures were its own, the job goes on."""
    backend = _Backend(error)
    watch = EndpointWatch(backend, "http://127.0.0.1:9/v1")

    async def ask_twice() -> list[bool]:
        return [await watch.gone(), await watch.gone()]

    assert asyncio.run(ask_twice()) == [gone, gone]
    assert backend.probes == (1 if gone else 2)  # once lost, it stays lost without asking again
    assert EndpointWatch(object(), None).url == "https://api.openai.com/v1"
    assert asyncio.run(EndpointWatch(object(), None).gone()) is False  # an in-process backend: never lost


def test_samples_that_fail_for_good_while_the_server_answers_end_incomplete_with_exit_6(tmp_path):
    """Every request times out (the mock holds it past the client's timeout) but `GET /v1/models` answers: the server
    is not lost, the job does not stop early, yet no task is complete: `stopped_reason "incomplete"`, exit 6, one
    message naming the errors and the fix, no traceback (before: exit 0, "done")."""
    from selfplay.core.errors import EXIT_INCOMPLETE

    with MockServer(faults={"timeout": 1.0}, hang_s=5.0, max_consecutive_faults=1000) as server:
        config = write_job(tmp_path, server.base_url, tasks=4, k=2, concurrency=4, timeout_s=0.3)
        config.write_text(config.read_text().replace("max_attempts = 8", "max_attempts = 2"))
        result = cli("generate", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == EXIT_INCOMPLETE, result.stderr
    assert "Traceback" not in result.stderr and "incomplete: 4 of 4 tasks" in result.stderr and "base_url" in result.stderr
    assert "run the same command" in result.stderr
    summary = read_summary(tmp_path / "out")
    assert summary["stopped_reason"] == "incomplete" and summary["tasks_complete"] == 0
    assert summary["errors"].get("timeout", 0) > 0


def test_a_wrong_base_url_that_404s_every_request_is_not_a_success(tmp_path):
    """The mock's root instead of its /v1 base: every request is a 404 (`not_found`, no retry). Before: exit 0,
    "done", every task counted complete with no candidate. Now: "incomplete", exit 6, the error kind named."""
    from selfplay.core.errors import EXIT_INCOMPLETE

    with MockServer() as server:
        config = write_job(tmp_path, server.url, tasks=3, k=2)  # server.url has no /v1: every request 404s
        result = cli("generate", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress")
    assert result.returncode == EXIT_INCOMPLETE and "Traceback" not in result.stderr
    assert "not_found" in result.stderr and "base_url" in result.stderr
    assert read_summary(tmp_path / "out")["tasks_complete"] == 0
