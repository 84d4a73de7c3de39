"""Running the mock app under uvicorn: in the foreground (the CLI) or in a background thread (tests).

What it is for: binding 127.0.0.1 (port 0 = a free port, known before the server starts), running uvicorn
quietly (log level warning, no access log; httptools / uvloop when installed), and stopping cleanly:
held 'timeout' faults are released first so that shutdown never waits for them.
What it does NOT do: parse flags (see `selfplay.cli.mock_server`) or pytest (see `selfplay.testing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from typing import Callable

import uvicorn

from selfplay.mock.app import MockConfig, MockState, build_app, quiet_dropped_connections


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket says it is TCP; without it every response pays Nagle + delayed ACK (~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _uvicorn_config(app, host: str, port: int) -> uvicorn.Config:
    # A long keep-alive: with uvicorn's default (5 s, the same as httpx's pool expiry) a busy client at high
    # concurrency races the server's close of idle connections and sees spurious ReadErrors.
    return uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                          loop="auto", http="auto", timeout_graceful_shutdown=3, server_header=False,
                          backlog=4096, timeout_keep_alive=120)


def _new_loop(config: uvicorn.Config) -> asyncio.AbstractEventLoop:
    factory = config.get_loop_factory() if hasattr(config, "get_loop_factory") else None
    return factory() if factory is not None else asyncio.new_event_loop()


class _ForegroundServer(uvicorn.Server):
    """uvicorn.Server that stops on SIGINT/SIGTERM and then returns, instead of re-raising the signal."""

    @contextlib.contextmanager
    def capture_signals(self):
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_forever(config: MockConfig, host: str = "127.0.0.1", port: int = 0,
                  on_ready: Callable[[int], None] | None = None) -> None:
    """Serve in this (main) thread until SIGINT or SIGTERM; `on_ready(port)` once it accepts requests."""
    quiet_dropped_connections()
    sock = bind(host, port)
    app = build_app(config)
    uv_config = _uvicorn_config(app, host, sock.getsockname()[1])
    server = _ForegroundServer(uv_config)
    loop = _new_loop(uv_config)

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


class BackgroundServer:
    """The mock server in a daemon thread with its own event loop; `start()`, then `stop()`."""

    def __init__(self, config: MockConfig, host: str = "127.0.0.1", port: int = 0):
        self.config = config
        self.host = host
        self._sock = bind(host, port)
        self.port: int = self._sock.getsockname()[1]
        self.app = build_app(config)
        self.state: MockState = self.app.state.mock
        self._server = uvicorn.Server(_uvicorn_config(self.app, host, self.port))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 15.0) -> "BackgroundServer":
        quiet_dropped_connections()
        self._thread = threading.Thread(target=self._run, name=f"selfplay-mock-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"mock server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mock server did not start within {timeout} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        self._loop = _new_loop(self._server.config)
        try:
            self._loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by start(); a thread has nowhere else to put it
            self._error = exc
        finally:
            self._loop.close()

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

    def stop(self, timeout: float = 15.0) -> None:
        if self._thread is None:
            self._sock.close()
            return
        if self._thread.is_alive() and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                self._loop.call_soon_threadsafe(self.state.release_hangs)
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()
        if self._thread.is_alive():
            raise RuntimeError(f"mock server thread on port {self.port} did not stop within {timeout} s")
        self._thread = None

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
