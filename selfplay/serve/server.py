"""Running `selfplay serve`'s app under uvicorn: in the foreground (the CLI) or in a background thread (tests).

What it is for: binding the socket first (port 0 = a free port, known before uvicorn starts), announcing the
address once requests are accepted, stopping cleanly on SIGINT / SIGTERM, and closing the backend after.
What it does not do: build the app (`selfplay.serve.app`) or load a model (`selfplay.cli.serve`).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from typing import Any, Callable

import uvicorn

from selfplay.serve.app import build_app


def bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class _QuietExitServer(uvicorn.Server):
    """A uvicorn server that, stopped by SIGINT / SIGTERM, returns instead of re-raising the signal."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[override]
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _server(llm: Any, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(build_app(llm), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=5, server_header=False)
    return _QuietExitServer(config)


def serve_forever(llm: Any, host: str = "127.0.0.1", port: int = 8000,
                  on_ready: Callable[[int], None] | None = None) -> None:
    """Serve until SIGINT / SIGTERM (uvicorn's own handlers), then close the backend and return."""
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    server = _server(llm, host, bound)

    async def main() -> None:
        task = asyncio.ensure_future(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started and on_ready is not None:
            on_ready(bound)
        try:
            await task
        finally:
            await llm.aclose()

    try:
        asyncio.run(main())
    finally:
        sock.close()


class BackgroundServer:
    """`selfplay serve`'s app in a daemon thread with its own event loop (tests); `with` starts and stops it."""

    def __init__(self, llm: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._sock = bind(host, port)
        self.port = self._sock.getsockname()[1]
        self._server = _server(llm, host, self.port)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 15.0) -> "BackgroundServer":
        self._thread = threading.Thread(target=self._run, name=f"selfplay-serve-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start within {timeout} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._error = exc

    def stop(self, timeout: float = 15.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
