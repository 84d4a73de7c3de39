"""OpenAI-compatible HTTP servers: `mock` (scripted, with faults: offline tests), `serve` (a local model, with vLLM's
runtime LoRA routes), the protocol pieces they share (`protocol`, `sse`, `http`), and `testing` (pytest fixtures).

What it is for: letting jobs and users' tests talk HTTP exactly as they would to vLLM or OpenAI.
What it does not do: run jobs; nothing here imports `selfplay.jobs`.
"""

# The public face: these submodules (imported on use).
__all__ = ["http", "mock", "protocol", "serve", "sse", "testing"]
