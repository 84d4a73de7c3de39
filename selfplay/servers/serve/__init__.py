"""`selfplay serve`: an OpenAI-compatible HTTP server over the in-process `local` backend.

- `build_app(llm)`: the FastAPI app (`/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/health`, and
  vLLM's runtime LoRA routes `/v1/load_lora_adapter` / `/v1/unload_lora_adapter`, see `selfplay.servers.serve.lora`).
- `serve_forever(llm, host, port)` / `BackgroundServer(llm)`: run it under uvicorn.
It does not load models (see `selfplay.cli.serve`) and does not stream.
"""

from selfplay.servers.serve.app import build_app
from selfplay.servers.serve.server import BackgroundServer, serve_forever

__all__ = ["build_app", "BackgroundServer", "serve_forever"]
