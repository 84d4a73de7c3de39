"""Running `selfplay serve`'s app under uvicorn: in the foreground (the CLI) or in a background thread (tests).

What it is for: binding the socket first (port 0 = a free port, known before uvicorn starts), announcing the
address once requests are accepted, stopping cleanly on SIGINT / SIGTERM, and closing the backend after.
What it does not do: build the app (`selfplay.servers.serve.app`) or load a model (`selfplay.cli.serve`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import uvicorn

from selfplay.servers.http import QuietExitServer, ThreadedServer, bind
from selfplay.servers.serve.app import build_app


def _server(llm: Any, host: str, port: int) -> uvicorn.Server:
    config = uvicorn.Config(build_app(llm), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=5, server_header=False)
    return QuietExitServer(config)


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
            adapters = getattr(server.config.app.state, "adapters", None)
            if adapters is not None:  # the runtime LoRA adapters' own batchers
                await adapters.aclose()
            await llm.aclose()

    try:
        asyncio.run(main())
    finally:
        sock.close()


class BackgroundServer(ThreadedServer):
    """`selfplay serve`'s app in a daemon thread with its own event loop (tests); `with` starts and stops it."""

    name = "selfplay-serve"

    def __init__(self, llm: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        sock = bind(host, port)
        super().__init__(_server(llm, host, sock.getsockname()[1]), sock, host)
