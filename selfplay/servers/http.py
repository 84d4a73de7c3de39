"""Uvicorn plumbing shared by `selfplay serve` and `selfplay mock-server`.

What it is for: binding a TCP socket before the server starts (port 0 = a free port, known at once;
`IPPROTO_TCP` so that asyncio sets TCP_NODELAY on accepted connections: without it every reply pays
Nagle + delayed ACK, ~40 ms), a uvicorn server that returns on SIGINT/SIGTERM instead of re-raising,
and `ThreadedServer`: a server in a daemon thread with its own event loop, for tests.
What it does not do: build apps or parse flags (each server's own modules do).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from typing import Any

import uvicorn


def bind(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class QuietExitServer(uvicorn.Server):
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


def new_loop(config: uvicorn.Config) -> asyncio.AbstractEventLoop:
    factory = config.get_loop_factory() if hasattr(config, "get_loop_factory") else None
    return factory() if factory is not None else asyncio.new_event_loop()


class ThreadedServer:
    """A uvicorn server on a bound socket, run in a daemon thread with its own loop; `with` starts and stops it."""

    name = "selfplay-http"

    def __init__(self, server: uvicorn.Server, sock: socket.socket, host: str) -> None:
        self.host = host
        self._sock = sock
        self.port: int = sock.getsockname()[1]
        self._server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, timeout: float = 15.0) -> "ThreadedServer":
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"{self.name} failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start within {timeout} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        self._loop = new_loop(self._server.config)
        try:
            self._loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # noqa: BLE001 - reported by start(); a thread has nowhere else to put it
            self._error = exc
        finally:
            self._loop.close()

    def before_stop(self) -> None:
        """Hook: release whatever would hold shutdown up (runs while the loop is alive)."""

    def stop(self, timeout: float = 15.0) -> None:
        if self._thread is None:
            self._sock.close()
            return
        if self._thread.is_alive():
            self.before_stop()
        self._server.should_exit = True
        self._thread.join(timeout)
        self._sock.close()
        if self._thread.is_alive():
            raise RuntimeError(f"{self.name} thread on port {self.port} did not stop within {timeout} s")
        self._thread = None

    def __enter__(self) -> "ThreadedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
