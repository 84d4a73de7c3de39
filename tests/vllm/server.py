"""The `vllm` tier's server: `selfplay.policy.vllm_process.VLLMServer` (the launcher the served demo uses too).

What it is for: one import path for the tier's tests, and `finished`, the tier's notion of a loop that ran.
What it does not do: anything else (the launcher and its flags are product code).
"""

from __future__ import annotations

import subprocess

from selfplay.policy.vllm_process import BASE_NAME, VLLMServer, free_port, server_argv, server_env  # noqa: F401


def finished(result: subprocess.CompletedProcess) -> bool:
    """A `selfplay run` that ran every round: exit 0, or exit 5 when it learned nothing (the tier's loops are a few
    tiny rounds that test the mechanics on vLLM, not learning; the served demo measures learning)."""
    return result.returncode == 0 or (result.returncode == 5 and "learned nothing" in result.stderr)
