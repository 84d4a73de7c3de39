"""Running the mock app under uvicorn: in the foreground (the CLI) or in a background thread (tests).

What it is for: binding 127.0.0.1 (port 0 = a free port, known before the server starts), running uvicorn
quietly (log level warning, no access log; httptools / uvloop when installed), and stopping cleanly:
held 'timeout' faults are released first so that shutdown never waits for them.
What it does NOT do: parse flags (see `selfplay.cli.mock_server`) or pytest (see `selfplay.servers.testing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Callable

import uvicorn

from selfplay.servers.http import QuietExitServer, ThreadedServer, bind, new_loop
from selfplay.servers.mock.app import MockConfig, MockState, build_app, quiet_dropped_connections


def _uvicorn_config(app, host: str, port: int) -> uvicorn.Config:
    # A long keep-alive: with uvicorn's default (5 s, the same as httpx's pool expiry) a busy client at high
    # concurrency races the server's close of idle connections and sees spurious ReadErrors.
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                          loop="auto", http="auto", timeout_graceful_shutdown=3, server_header=False,
                          backlog=4096, timeout_keep_alive=120)


def serve_forever(config: MockConfig, host: str = "127.0.0.1", port: int = 0,
                  on_ready: Callable[[int], None] | None = None) -> None:
    """Serve in this (main) thread until SIGINT or SIGTERM; `on_ready(port)` once it accepts requests."""
    quiet_dropped_connections()
    sock = bind(host, port)
    app = build_app(config)
    uv_config = _uvicorn_config(app, host, sock.getsockname()[1])
    server = QuietExitServer(uv_config)
    loop = new_loop(uv_config)

    async def main() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(sock.getsockname()[1])
        while not task.done():
            if server.should_exit:
                app.state.mock.release_hangs()
            await asyncio.sleep(0.05)
        await task

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
        sock.close()


class BackgroundServer(ThreadedServer):
    """The mock server in a daemon thread with its own event loop; `start()`, then `stop()`."""

    name = "selfplay-mock"

    def __init__(self, config: MockConfig, host: str = "127.0.0.1", port: int = 0):
        self.config = config
        sock = bind(host, port)
        self.app = build_app(config)
        self.state: MockState = self.app.state.mock
        super().__init__(uvicorn.Server(_uvicorn_config(self.app, host, sock.getsockname()[1])), sock, host)

    def start(self, timeout: float = 15.0) -> "BackgroundServer":
        quiet_dropped_connections()
        super().start(timeout)
        return self

    def call_in_loop(self, fn: Callable[[], object], timeout: float = 10.0):
        """Run `fn()` on the server's loop (where its state lives) and return its result."""
        if self._loop is None or self._loop.is_closed():
            return fn()
        done = threading.Event()
        box: dict = {}

        def call() -> None:
            try:
                box["value"] = fn()
            finally:
                done.set()

        self._loop.call_soon_threadsafe(call)
        if not done.wait(timeout):
            raise TimeoutError("mock server loop did not answer")
        return box.get("value")

    def before_stop(self) -> None:
        """Held 'timeout' faults are released first so that shutdown never waits for them."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                self._loop.call_soon_threadsafe(self.state.release_hangs)
